// Connects socket.io-client 4.x to Backchannel's /chat the way a web app would, and prints
// what happened as one JSON line: with a token it connects; without one it gets connect_error.
import { io } from "socket.io-client";

const [baseUrl, token] = process.argv.slice(2);

function attempt(auth) {
  return new Promise((resolve) => {
    const socket = io(`${baseUrl}/chat`, { auth, transports: ["websocket"], reconnection: false });
    const timer = setTimeout(() => { socket.close(); resolve({ outcome: "timeout" }); }, 5000);
    socket.on("connect", async () => {
      const ack = await socket.timeout(5000).emitWithAck("no:such:event", {});
      clearTimeout(timer);
      socket.close();
      resolve({ outcome: "connected", ack });
    });
    socket.on("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      resolve({ outcome: "connect_error", message: err.message, data: err.data });
    });
  });
}

const withToken = await attempt({ token });
const withoutToken = await attempt({});
console.log(JSON.stringify({ withToken, withoutToken }));
