#!/usr/bin/env node
// Peer (b): the reference Node.js socket.io 4.x server, serving the same events and shapes as
// Backchannel with no auth and no persistence. Usage: node node_socketio.js PORT
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 8090);
const CREATOR_ROOM = (id) => `subscribers:${id}`;
const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404);
  res.end();
});
// socket.io 4 declines permessage-deflate by default; its defaults are what users run.
const io = new Server(server, { transports: ["websocket"] });

let nextId = 1;
function join(socket) {
  const auth = socket.handshake.auth || {};
  socket.data.userId = String(auth.user_id || socket.id);
  socket.join([`user:${socket.data.userId}`, CREATOR_ROOM(auth.creator_id || "bench-creator")]);
}

const chat = io.of("/chat");
chat.on("connection", (socket) => {
  join(socket);
  socket.on("message:send", (data, ack) => {
    const members = String(data.conversation_id).split(" ");
    const message = {
      id: String(nextId++),
      conversation_id: data.conversation_id,
      seq: nextId,
      sender_id: socket.data.userId,
      client_id: data.client_id,
      created_at: new Date().toISOString(),
      body: data.body ?? null,
      media: [],
      price_cents: null,
      currency: "usd",
      locked: false,
    };
    chat.to(members.map((m) => `user:${m}`)).emit("message:new", message);
    if (typeof ack === "function") ack({ ok: true, data: message });
  });
  socket.on("bench:broadcast", (data, ack) => {
    socket.to(CREATOR_ROOM(socket.data.userId)).emit("bench:news", data);
    if (typeof ack === "function") ack({ ok: true, data: null });
  });
});

io.of("/ppv").on("connection", (socket) => {
  join(socket);
  socket.on("ppv:broadcast", (data, ack) => {
    // What Backchannel sends: one locked rendering to the creator's subscribers room.
    const id = String(nextId++);
    const payload = {
      broadcast_id: id,
      sender_id: socket.data.userId,
      client_id: data.client_id,
      created_at: new Date().toISOString(),
      body: null,
      media: [],
      price_cents: data.price_cents,
      currency: data.currency || "usd",
      locked: true,
      preview: { text: data.preview_text ?? null, media_count: 0 },
    };
    chat.to(CREATOR_ROOM(socket.data.userId)).emit("message:broadcast", payload);
    if (typeof ack === "function") ack({ ok: true, data: { broadcast_id: id, recipients: 0 } });
  });
});

server.listen(port, "127.0.0.1");
