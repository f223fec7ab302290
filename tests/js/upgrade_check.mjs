// Connects socket.io-client 4.x the default way (long-polling, then the upgrade to websocket),
// stays connected for a while (several ping cycles when the server's pings are short), then
// asks for an ack, and prints what happened as one JSON line.
import { io } from "socket.io-client";

const [baseUrl, token, holdMs] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const result = await new Promise((resolve) => {
  const socket = io(`${baseUrl}/chat`, { auth: { token }, reconnection: false });
  const events = [];
  const timer = setTimeout(() => { socket.close(); resolve({ outcome: "timeout", events }); }, 20000);
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    events.push(`open:${engine.transport.name}`);
    engine.on("upgrade", (transport) => events.push(`upgrade:${transport.name}`));
  });
  socket.on("disconnect", (reason) => events.push(`disconnect:${reason}`));
  socket.on("connect", async () => {
    const engine = socket.io.engine;
    for (let i = 0; i < 100 && engine.transport.name !== "websocket"; i++) await sleep(50);
    await sleep(Number(holdMs));
    try {
      const ack = await socket.timeout(5000).emitWithAck("no:such:event", {});
      resolve({ outcome: "acked", transport: engine.transport.name, connected: socket.connected, ack, events });
    } catch (err) {
      resolve({ outcome: "no-ack", error: String(err), events });
    } finally {
      clearTimeout(timer);
      socket.close();
    }
  });
  socket.on("connect_error", (err) => {
    clearTimeout(timer);
    socket.close();
    resolve({ outcome: "connect_error", message: err.message, events });
  });
});
console.log(JSON.stringify(result));
