// Two socket.io-client 4.x users on /chat: the creator opens a DM and sends a free and a paid
// message; prints, as one JSON line, the acks and what the fan's socket received.
import { io } from "socket.io-client";

const [baseUrl, creatorToken, fanId, fanToken] = process.argv.slice(2);

function connect(token) {
  return new Promise((resolve, reject) => {
    const socket = io(`${baseUrl}/chat`, { auth: { token }, transports: ["websocket"], reconnection: false });
    socket.on("connect", () => resolve(socket));
    socket.on("connect_error", reject);
  });
}

const creator = await connect(creatorToken);
const fan = await connect(fanToken);
const received = [];
const twoArrived = new Promise((resolve) => {
  fan.on("message:new", (message) => {
    received.push(message);
    if (received.length === 2) resolve();
  });
});
const call = (event, data) => creator.timeout(5000).emitWithAck(event, data);
const opened = await call("conversation:open", { participant_ids: [fanId] });
const id = opened.data.id;
const free = await call("message:send", { conversation_id: id, client_id: "js-1", body: "hi from js" });
const paid = await call("message:send", {
  conversation_id: id, client_id: "js-2", body: "JS-SECRET", price_cents: 300, preview_text: "peek",
});
await Promise.race([twoArrived, new Promise((r) => setTimeout(r, 5000))]);
creator.close();
fan.close();
console.log(JSON.stringify({ free, paid, received }));
