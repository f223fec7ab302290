// Token refresh on the live connection, against a real Backchannel at $BACKCHANNEL_URL whose
// access tokens live $BACKCHANNEL_TOKEN_TTL seconds (tests/handlers/test_js_sdk.py starts it).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "../dist/esm/index.js";

const url = process.env.BACKCHANNEL_URL;
const ttl = Number(process.env.BACKCHANNEL_TOKEN_TTL ?? 0);
const skip = ttl > 0 && ttl < 30 ? false : "needs a server with access tokens shorter than 30 s";
const stamp = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
let users = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(path, body) {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
}

/** A user and a getToken() that rotates their refresh token, counting its calls. */
async function user(role) {
  const auth = await post("/api/v1/auth/register", {
    email: `${role}-${stamp}-${++users}@example.com`, password: "correct horse battery", display_name: role, role,
  });
  let refresh = auth.refresh_token;
  const account = { id: auth.user.id, token: auth.access_token, calls: 0 };
  account.failUntil = 0; // an identity provider that is down until then
  account.getToken = async () => {
    account.calls += 1;
    if (Date.now() < account.failUntil) throw new Error("identity provider unavailable");
    const pair = await post("/api/v1/auth/refresh", { refresh_token: refresh });
    refresh = pair.refresh_token;
    return pair.access_token;
  };
  return account;
}

test("the connection outlives several token lifetimes and no message is lost", { skip, timeout: 90000 }, async () => {
  const creator = await user("creator");
  const fan = await user("fan");
  const a = createClient({ url, token: creator.token, getToken: creator.getToken });
  const b = createClient({ url, token: fan.token, getToken: fan.getToken });
  // The control: the same kind of token with no way to refresh it is cut off at expiry.
  const control = createClient({ url, token: (await user("fan")).token });
  try {
    await Promise.all([a.ready(), b.ready(), control.ready()]);
    let controlCut = 0;
    control.on("status", (s) => s === "disconnected" && (controlCut = Date.now()));
    const drops = [];
    b.on("status", (s) => s === "disconnected" && drops.push(Date.now()));
    const chatSocket = b.socket("/chat").id;
    const seen = [];
    b.on("message", (m) => seen.push(m));
    const conversation = await a.openConversation([fan.id]);
    const started = Date.now();
    const sent = [];
    // Messages all along, across 2.5 token lifetimes.
    while (Date.now() - started < ttl * 2500) {
      sent.push((await a.send(conversation.id, { body: `m${sent.length}` })).seq);
      await sleep(300);
    }
    const deadline = Date.now() + 10000;
    while (seen.length < sent.length && Date.now() < deadline) await sleep(25);

    assert.ok(controlCut > 0, "a token nobody refreshes ends the connection at expiry");
    assert.deepEqual(drops, [], "the refreshing client never dropped its connection");
    assert.equal(b.socket("/chat").id, chatSocket, "the same socket all along");
    assert.ok(b.refreshCount >= 2 && a.refreshCount >= 2, `refreshed ${b.refreshCount} and ${a.refreshCount} times`);
    assert.ok(fan.calls >= b.refreshCount, "every refresh took a fresh token from getToken()");
    assert.deepEqual(seen.map((m) => m.seq), sent, "every message, once, in order");
    assert.deepEqual(seen.map((m) => m.body), sent.map((_, i) => `m${i}`));
  } finally {
    a.close();
    b.close();
    control.close();
  }
});

test("when the token cannot be refreshed in time, the client reconnects with a fresh one and loses nothing", { skip, timeout: 90000 }, async () => {
  const creator = await user("creator");
  const fan = await user("fan");
  const a = createClient({ url, token: creator.token, getToken: creator.getToken });
  const b = createClient({ url, token: fan.token, getToken: fan.getToken });
  try {
    await Promise.all([a.ready(), b.ready()]);
    const started = Date.now();
    fan.failUntil = started + ttl * 1000 + 3000; // past the first token's expiry
    const drops = [];
    const returns = [];
    b.on("status", (s) => (s === "disconnected" ? drops : returns).push(Date.now()));
    const seen = [];
    b.on("message", (m) => seen.push(m));
    const conversation = await a.openConversation([fan.id]);
    const sent = [];
    while (Date.now() - started < ttl * 2000) {
      sent.push((await a.send(conversation.id, { body: `m${sent.length}` })).seq);
      await sleep(300);
    }
    const deadline = Date.now() + 15000;
    while (seen.length < sent.length && Date.now() < deadline) await sleep(25);

    assert.ok(drops.length >= 1 && drops[0] > started, "the expired token ended the connection");
    assert.ok(returns.some((t) => t > fan.failUntil), "it came back once a token could be had");
    assert.ok(b.connected, "connected at the end");
    assert.deepEqual(seen.map((m) => m.seq), sent, "every message, once, in order, across the gap");
  } finally {
    a.close();
    b.close();
  }
});
