// One combination of the client matrix: a socket.io-client version, a transport, a parser.
// argv: version (4.8|4.0|3.1) transport (websocket|polling|upgrade) parser (json|msgpack)
//       baseUrl token jwtSecret peerId (the secret mints a token that expires in ~3 s, when needed)
// Prints {"phase":"connected"} once every check before the restart has passed, then waits for
// the node to be restarted (server:shutdown, then reconnection), and prints the final result.
import { createHmac } from "node:crypto";

const [version, transport, parser, baseUrl, token, jwtSecret, peerId] = process.argv.slice(2);

function shortLivedToken() {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const sub = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()).sub;
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, type: "access", iat: now, exp: now + 3 })}`;
  return `${body}.${createHmac("sha256", jwtSecret).update(body).digest("base64url")}`;
}
const modules = { "4.8": "socket.io-client", "4.0": "socket.io-client-4.0", "3.1": "socket.io-client-3.1" };
const { Manager } = await import(modules[version]);
const msgpackParser = parser === "msgpack" ? (await import("socket.io-msgpack-parser")).default : null;
const NAMESPACES = ["/chat", "/typing", "/presence", "/ppv", "/notifications"];

function options() {
  const opts = { reconnectionDelay: 200, reconnectionDelayMax: 500, timeout: 5000 };
  if (transport === "websocket") opts.transports = ["websocket"];
  if (transport === "polling") opts.transports = ["polling"];
  if (msgpackParser) opts.parser = msgpackParser;
  return opts;
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function once(socket, event) {
  return new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
}

function ack(socket, event, data) {
  return within(5000, `ack ${event} on ${socket.nsp}`, new Promise((resolve) => socket.emit(event, data, resolve)));
}

function connected(socket) {
  return within(5000, `connect ${socket.nsp}`, new Promise((resolve, reject) => {
    if (socket.connected) return resolve();
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`connect_error on ${socket.nsp}: ${err.message}`)));
  }));
}

function refused(manager, nsp, auth) {
  const socket = manager.socket(nsp, { auth });
  socket.connect();
  return within(5000, `refusal on ${nsp}`, new Promise((resolve) => {
    socket.once("connect", () => resolve({ outcome: "connected" }));
    socket.once("connect_error", (err) => { socket.close(); resolve({ message: err.message, data: err.data }); });
  }));
}

const result = { version, transport, parser };
try {
  const manager = new Manager(baseUrl, options());
  const sockets = Object.fromEntries(NAMESPACES.map((nsp) => [nsp, manager.socket(nsp, { auth: { token } })]));
  const shutdown = once(sockets["/chat"], "server:shutdown");
  for (const socket of Object.values(sockets)) socket.connect();
  await Promise.all(Object.values(sockets).map(connected));
  result.engineTransport = manager.engine.transport.name;
  result.acks = {};
  for (const [nsp, socket] of Object.entries(sockets)) result.acks[nsp] = await ack(socket, "no:such:event", {});
  const conversation = await ack(sockets["/chat"], "conversation:open", { participant_ids: [peerId] });
  const pushed = once(sockets["/chat"], "message:new");
  const sent = await ack(sockets["/chat"], "message:send", {
    conversation_id: conversation.data.id, client_id: `m-${version}-${transport}-${parser}`, body: "héllo",
  });
  const [push] = await within(5000, "message:new push", pushed);
  result.push = { sentOk: sent.ok, sameId: push.id === sent.data.id, body: push.body };
  result.refusedUnknown = await refused(manager, "/nope", { token });
  result.refusedNoToken = await refused(new Manager(baseUrl, { ...options(), reconnection: false }), "/chat", {});

  // Token expiry on /chat of a second connection; its /typing (a good token) must survive.
  const second = new Manager(baseUrl, options());
  const expiring = second.socket("/chat", { auth: { token: shortLivedToken() } });
  const survivor = second.socket("/typing", { auth: { token } });
  const expired = once(expiring, "session:expired");
  const expiredDisconnect = once(expiring, "disconnect");
  let survivorDropped = null;
  survivor.on("disconnect", (reason) => { survivorDropped = reason; });
  expiring.connect(); survivor.connect();
  await Promise.all([connected(expiring), connected(survivor)]);
  const [expiredData] = await within(15000, "session:expired", expired);
  const [expiredReason] = await within(5000, "disconnect after expiry", expiredDisconnect);
  const survivorAck = await ack(survivor, "no:such:event", {});
  result.expiry = { code: expiredData.code, reason: expiredReason, survivorDropped, survivorAcked: survivorAck.ok === false };
  second.engine.close();

  const reconnecting = Promise.all(
    Object.values(sockets).map((socket) => new Promise((resolve) => {
      socket.once("disconnect", (reason) => socket.once("connect", () => resolve(reason)));
    })),
  );
  console.log(JSON.stringify({ phase: "connected" }));
  const [notice] = await within(30000, "server:shutdown", shutdown);
  const reconnected = await within(30000, "reconnect of every namespace", reconnecting);
  result.restart = { notice, reasons: reconnected, ackAfter: (await ack(sockets["/ppv"], "wallet:get", {})).ok };
  manager.engine.close();
  result.ok = true;
} catch (err) {
  result.ok = false;
  result.error = String(err && err.stack || err);
}
console.log(JSON.stringify(result));
process.exit(0);
