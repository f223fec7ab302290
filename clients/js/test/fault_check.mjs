// Driven by tests/handlers/test_js_sdk_faults.py: a creator sends N messages to a fan while the
// test kills a node and restarts Redis; prints the fan's app-level stream as JSON.
import { createClient } from "../dist/esm/index.js";

const [url, creatorToken, fanToken, conversationId, count] = process.argv.slice(2);
const n = Number(count);
const quick = { manager: { reconnectionDelay: 100, reconnectionDelayMax: 500 }, ackTimeoutMs: 2000 };
const creator = createClient({ url, token: creatorToken, ...quick });
const fan = createClient({ url, token: fanToken, ...quick });
const seen = [];
fan.on("message", (m) => {
  seen.push({ seq: m.seq, body: m.body, id: m.id });
  console.log(`seen ${seen.length}`);
});
await Promise.all([creator.ready(20000), fan.ready(20000)]);
fan.track(conversationId);
const sent = [];
for (let i = 0; i < n; i++) {
  sent.push((await creator.send(conversationId, { body: `m${i}` })).id);
  await new Promise((r) => setTimeout(r, 60));
}
const deadline = Date.now() + 30000;
while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 500));
console.log(JSON.stringify({ seen, sent }));
creator.close();
fan.close();
process.exit(0);
