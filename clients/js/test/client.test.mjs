// The SDK against a real Backchannel at $BACKCHANNEL_URL (started by tests/handlers/test_js_sdk.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "../dist/esm/index.js";

const url = process.env.BACKCHANNEL_URL;
const stamp = `${Date.now()}-${Math.random().toString(16).slice(2)}`;

async function register(role) {
  const response = await fetch(`${url}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: `${role}-${stamp}-${Math.random()}@example.com`, password: "correct horse battery", display_name: role, role }),
  });
  assert.equal(response.status, 201);
  return response.json();
}

const waitFor = async (condition, what, ms = 10000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

test("messages reach the app once, in seq order, and a retried send is stored once", async () => {
  const creator = await register("creator");
  const fan = await register("fan");
  const a = createClient({ url, token: creator.access_token });
  const b = createClient({ url, token: fan.access_token });
  try {
    await Promise.all([a.ready(), b.ready()]);
    const seen = [];
    b.on("message", (m) => seen.push(m));
    const conversation = await a.openConversation([fan.user.id]);
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await a.send(conversation.id, { body: `m${i}` }));
    const again = await a.send(conversation.id, { body: "m4", client_id: sent[4].client_id });
    assert.equal(again.id, sent[4].id);
    await waitFor(() => seen.length >= 5, "five messages");
    // The fan disconnects, misses two, and gets them on reconnect, without duplicates.
    b.close();
    sent.push(await a.send(conversation.id, { body: "m5" }), await a.send(conversation.id, { body: "m6" }));
    b.connect();
    await waitFor(() => seen.length >= 7, "seven messages");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(seen.map((m) => m.body), ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    assert.deepEqual(b.seqs(), { [conversation.id]: 7 });
  } finally {
    a.close();
    b.close();
  }
});

test("a client that joins late gets the whole history in order, then live ones", async () => {
  const creator = await register("creator");
  const fan = await register("fan");
  const a = createClient({ url, token: creator.access_token });
  await a.ready();
  const conversation = await a.openConversation([fan.user.id]);
  for (let i = 0; i < 3; i++) await a.send(conversation.id, { body: `h${i}` });
  const b = createClient({ url, token: fan.access_token });
  try {
    const seen = [];
    b.on("message", (m) => seen.push(m.seq));
    await b.ready();
    await waitFor(() => seen.length >= 3, "history");
    await a.send(conversation.id, { body: "live" });
    await waitFor(() => seen.length >= 4, "live");
    assert.deepEqual(seen, [1, 2, 3, 4]);
  } finally {
    a.close();
    b.close();
  }
});

test("a paid message arrives locked and unlocks live; the wallet keeps the highest version", async () => {
  const creator = await register("creator");
  const fan = await register("fan");
  const a = createClient({ url, token: creator.access_token });
  const b = createClient({ url, token: fan.access_token });
  try {
    await Promise.all([a.ready(), b.ready()]);
    const seen = [];
    const updates = [];
    const wallets = [];
    b.on("message", (m) => seen.push(m));
    b.on("message:update", (m) => updates.push(m));
    b.on("wallet", (w) => wallets.push(w.version));
    const conversation = await a.openConversation([fan.user.id]);
    await a.send(conversation.id, { body: "secret", price_cents: 300, preview_text: "a secret" });
    await waitFor(() => seen.length === 1, "paid message");
    assert.equal(seen[0].locked, true);
    assert.equal(seen[0].body, null);
    const topup = await fetch(`${url}/api/v1/dev/wallet/topup`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${fan.access_token}` },
      body: JSON.stringify({ amount_cents: 1000 }),
    });
    assert.equal(topup.status, 200);
    const whole = await b.unlock(seen[0].id);
    assert.equal(whole.body, "secret");
    await waitFor(() => b.wallet()?.balance_cents === 700, "wallet after unlock");
    assert.ok(updates.some((m) => m.id === seen[0].id && m.body === "secret"));
    assert.deepEqual([...wallets].sort((x, y) => x - y), wallets, "versions only grow");
  } finally {
    a.close();
    b.close();
  }
});
