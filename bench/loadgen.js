#!/usr/bin/env node
// The load generator: raw Engine.IO v4 / Socket.IO v5 frames over `ws`, one scenario per run.
//
// Why not socket.io-client: it costs ~5x the CPU and memory per socket of a bare `ws`, and at
// 10,000 sockets on one core the generator would be measuring itself. Every socket offers
// permessage-deflate exactly as a browser does; the server decides whether to accept it.
//
//   node loadgen.js '<json spec>'   ->  one JSON object on stdout
//
// Every loop is bounded in count and in time; traffic goes only to the URLs given (127.0.0.1).
"use strict";

const WebSocket = require("ws");
const crypto = require("crypto");
const fs = require("fs");

const spec = JSON.parse(process.argv[2]);
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- server process probes (/proc) ------------------------------------------------------------

function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

// CPU time of every thread of the process, in microseconds (schedstat is in ns, exact).
function cpuMicros(pid) {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch (_) {
      // the thread ended between readdir and read
    }
  }
  return total / 1000;
}

// -- tokens -----------------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const JWT_HEADER = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));

function mintToken(userId) {
  if (!spec.secret) return null;
  const iat = Math.floor(Date.now() / 1000);
  const body = b64url(JSON.stringify({ sub: userId, iat, exp: iat + 3600, type: "access" }));
  const sig = crypto.createHmac("sha256", spec.secret).update(`${JWT_HEADER}.${body}`).digest();
  return `${JWT_HEADER}.${body}.${b64url(sig)}`;
}

const userId = (i) => `${spec.userPrefix || "bench-u"}${String(i).padStart(6, "0")}`;

// -- one Socket.IO client over a raw websocket ------------------------------------------------

class Client {
  constructor(url, ns, user, extraAuth) {
    this.url = url;
    this.ns = ns;
    this.prefix = ns === "/" ? "" : `${ns},`;
    this.user = user;
    this.auth = { token: mintToken(user), user_id: user, ...(extraAuth || {}) };
    this.handlers = new Map();
    this.acks = new Map();
    this.nextAck = 1;
    this.ws = null;
    this.connected = false;
  }

  connect(timeoutMs) {
    return new Promise((resolve, reject) => {
      const started = now();
      let settled = false;
      const done = (err, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          try {
            this.ws.terminate();
          } catch (_) {}
          reject(err);
        } else resolve(value);
      };
      const timer = setTimeout(() => done(new Error("timeout")), timeoutMs);
      const wsUrl = `${this.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
      // perMessageDeflate: offered as browsers offer it (client_max_window_bits).
      this.ws = new WebSocket(wsUrl, { perMessageDeflate: true, handshakeTimeout: timeoutMs });
      this.ws.on("error", (e) => done(e));
      this.ws.on("close", () => {
        this.connected = false;
        done(new Error("closed"));
      });
      this.ws.on("message", (raw) => {
        const msg = raw.toString();
        const t = msg.charCodeAt(0);
        if (t === 50 /* 2 ping */) {
          this.ws.send("3");
        } else if (t === 48 /* 0 open */) {
          this.ws.send(`40${this.prefix}${JSON.stringify(this.auth)}`);
        } else if (t === 52 /* 4 message */) {
          this.onPacket(msg, done, started);
        }
      });
    });
  }

  onPacket(msg, done, started) {
    const type = msg.charCodeAt(1);
    let i = 2;
    if (msg.charCodeAt(i) === 47 /* / */) i = msg.indexOf(",", i) + 1;
    if (type === 48 /* 0 connect */) {
      this.connected = true;
      done(null, now() - started);
    } else if (type === 52 /* 4 connect_error */) {
      let data = msg.slice(i);
      try {
        data = JSON.parse(data);
      } catch (_) {}
      const err = new Error("refused");
      err.data = data;
      done(err);
    } else if (type === 50 /* 2 event */ || type === 51 /* 3 ack */) {
      let j = i;
      while (j < msg.length && msg.charCodeAt(j) >= 48 && msg.charCodeAt(j) <= 57) j++;
      const id = j > i ? Number(msg.slice(i, j)) : null;
      const args = JSON.parse(msg.slice(j));
      if (type === 51) {
        const cb = this.acks.get(id);
        if (cb) {
          this.acks.delete(id);
          cb(args[0]);
        }
      } else {
        const h = this.handlers.get(args[0]);
        if (h) h(args[1]);
      }
    }
  }

  on(event, fn) {
    this.handlers.set(event, fn);
  }

  emit(event, data, ack) {
    let id = "";
    if (ack) {
      id = String(this.nextAck++);
      this.acks.set(Number(id), ack);
    }
    this.ws.send(`42${this.prefix}${id}${JSON.stringify([event, data])}`);
  }

  close() {
    try {
      this.ws.terminate();
    } catch (_) {}
  }
}

// Open `users.length` sockets with at most `concurrency` handshakes in flight.
async function connectMany(url, ns, users, { concurrency = 200, timeoutMs = 20000, extraAuth } = {}) {
  const clients = [];
  const failures = {};
  let next = 0;
  const started = now();
  async function worker() {
    while (next < users.length) {
      const u = users[next++];
      const c = new Client(url, ns, u, extraAuth && extraAuth(u));
      try {
        await c.connect(timeoutMs);
        clients.push(c);
      } catch (e) {
        const key = e.message === "refused" ? `refused:${(e.data && e.data.code) || "?"}` : e.message;
        failures[key] = (failures[key] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, worker));
  return { clients, failures, seconds: (now() - started) / 1000 };
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(xs) {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
}

const range = (a, b) => Array.from({ length: b - a }, (_, k) => a + k);

// -- scenarios --------------------------------------------------------------------------------

// Memory per idle connection at each step, and connects per second on the way up.
async function idle() {
  const pid = spec.pid;
  await sleep(500);
  const base = rssBytes(pid);
  const steps = [];
  let clients = [];
  let have = 0;
  for (const target of spec.steps) {
    const cpu0 = cpuMicros(pid);
    const r = await connectMany(spec.url, spec.ns, range(have, target).map(userId), {
      concurrency: spec.concurrency || 100,
    });
    const cpu1 = cpuMicros(pid);
    clients = clients.concat(r.clients);
    const made = r.clients.length;
    have = target;
    await sleep(spec.settleMs || 1500);
    const rss = rssBytes(pid);
    steps.push({
      connections: clients.length,
      rss_bytes: rss,
      bytes_per_connection: clients.length ? (rss - base) / clients.length : null,
      connects_per_second: made / r.seconds,
      server_cpu_us_per_connect: made ? (cpu1 - cpu0) / made : null,
      failures: r.failures,
    });
  }
  if (spec.holdMs) await sleep(spec.holdMs);
  for (const c of clients) c.close();
  return { base_rss_bytes: base, steps };
}

// One trigger, `n` receivers: time until the last one has it, deliveries/s, server CPU/delivery.
async function fanout() {
  const pid = spec.pid;
  const sender = new Client(spec.url, spec.senderNs || spec.ns, spec.sender);
  await sender.connect(10000);
  let receivers = [];
  let have = 0;
  const steps = [];
  for (const target of spec.steps) {
    const r = await connectMany(spec.url, spec.ns, range(have, target).map(userId), {
      concurrency: spec.concurrency || 100,
    });
    receivers = receivers.concat(r.clients);
    have = target;
    const n = receivers.length;
    let got = 0;
    let last = 0;
    let resolveAll = null;
    for (const c of receivers) {
      c.on(spec.event, () => {
        got++;
        if (got === n) {
          last = now();
          if (resolveAll) resolveAll();
        }
      });
    }
    await sleep(spec.settleMs || 1000);
    const runs = [];
    for (let rep = 0; rep < spec.repeats; rep++) {
      got = 0;
      last = 0;
      const all = new Promise((res) => (resolveAll = res));
      let ackAt = null;
      let refused = null;
      let onRefused = null;
      const failed = new Promise((res) => (onRefused = res));
      const cpu0 = cpuMicros(pid);
      const t0 = now();
      sender.emit(spec.trigger, spec.payload(rep, n), (ack) => {
        ackAt = now();
        if (!ack || ack.ok !== true) {
          refused = ack;
          onRefused();
        }
      });
      const timedOut = await Promise.race([
        all.then(() => false),
        failed.then(() => true),
        sleep(spec.timeoutMs || 15000).then(() => true),
      ]);
      if (refused) throw new Error(`${spec.trigger} failed: ${JSON.stringify(refused)}`);
      const t1 = timedOut ? now() : last;
      // let the server finish the ack and whatever it does after the last write
      const ackDeadline = now() + 5000;
      while (ackAt === null && now() < ackDeadline) await sleep(5);
      await sleep(50);
      const cpu1 = cpuMicros(pid);
      runs.push({
        receivers: n,
        delivered: got,
        complete: !timedOut,
        last_delivery_ms: t1 - t0,
        ack_ms: ackAt === null ? null : ackAt - t0,
        deliveries_per_second: (got / (t1 - t0)) * 1000,
        server_cpu_us_per_delivery: got ? (cpu1 - cpu0) / got : null,
      });
      await sleep(spec.pauseMs || 300);
    }
    steps.push({
      receivers: n,
      connect_failures: r.failures,
      last_delivery_ms: median(runs.map((x) => x.last_delivery_ms)),
      deliveries_per_second: median(runs.map((x) => x.deliveries_per_second)),
      server_cpu_us_per_delivery: median(runs.map((x) => x.server_cpu_us_per_delivery)),
      ack_ms: median(runs.map((x) => x.ack_ms)),
      all_complete: runs.every((x) => x.complete),
      runs,
    });
  }
  sender.close();
  for (const c of receivers) c.close();
  return { steps };
}

// 1:1 messages: senders and receivers in pairs; latency from send to the receiver's event.
async function pairs() {
  const npairs = spec.pairs;
  const senders = [];
  const receivers = [];
  // `urls` spreads the pairs over a cluster: pair k's sender on node k mod n, its receiver on
  // node (k + floor(k / n)) mod n, so every (sender node, receiver node) combination is equally
  // common and 1/n of the pairs have both ends on one node.
  const urls = spec.urls || null;
  const sendUrl = (k) => (urls ? urls[k % urls.length] : spec.url);
  const recvUrl = (k) =>
    urls ? urls[(k + Math.floor(k / urls.length)) % urls.length] : spec.receiverUrl || spec.url;
  const spread = async (urlOf, userOf) => {
    const byUrl = new Map();
    for (let k = 0; k < npairs; k++) {
      if (!byUrl.has(urlOf(k))) byUrl.set(urlOf(k), []);
      byUrl.get(urlOf(k)).push(userOf(k));
    }
    const all = { clients: [], failures: {} };
    for (const [url, users] of byUrl) {
      const part = await connectMany(url, spec.ns, users, { concurrency: 100 });
      all.clients.push(...part.clients);
      for (const [key, n] of Object.entries(part.failures)) all.failures[key] = (all.failures[key] || 0) + n;
    }
    return all;
  };
  const s = await spread(sendUrl, (k) => userId(2 * k));
  const r = await spread(recvUrl, (k) => userId(2 * k + 1));
  const byUser = new Map();
  for (const c of s.clients) byUser.set(c.user, c);
  for (const c of r.clients) byUser.set(c.user, c);
  for (let k = 0; k < npairs; k++) {
    const a = byUser.get(userId(2 * k));
    const b = byUser.get(userId(2 * k + 1));
    if (a && b) {
      senders.push({ c: a, conv: spec.conversations[k] });
      receivers.push(b);
    }
  }
  const sentAt = new Map();
  let received = 0;
  let latencies = [];
  let errors = 0;
  let errorCodes = {};
  let lastAt = 0;
  for (const c of receivers) {
    c.on("message:new", (m) => {
      const t = sentAt.get(m.client_id);
      if (t !== undefined) {
        sentAt.delete(m.client_id);
        lastAt = now();
        latencies.push(lastAt - t);
        received++;
      }
    });
  }
  let seq = 0;
  let pendingAcks = 0;
  let acks = 0;
  // Server CPU per acked message over a step (every thread, from schedstat), when the pid is known.
  // `pids`: a cluster's nodes, summed (the CPU the whole cluster spent per message).
  const cpuNow = () =>
    spec.pids ? spec.pids.reduce((sum, pid) => sum + cpuMicros(pid), 0) : spec.pid ? cpuMicros(spec.pid) : null;
  const cpuPer = (cpu0, acked) => (cpu0 !== null && acked ? (cpuNow() - cpu0) / acked : null);
  // An overloaded step leaves a backlog on the server: let it drain before the next one.
  const drain = async (ms) => {
    const deadline = now() + ms;
    while (pendingAcks > 0 && now() < deadline) await sleep(20);
  };
  const send = (onAck) => {
    const p = senders[seq % senders.length];
    const clientId = `${process.pid}-${seq++}`;
    sentAt.set(clientId, now());
    pendingAcks++;
    p.c.emit(
      "message:send",
      { conversation_id: p.conv, client_id: clientId, body: "hello, this is a benchmark message" },
      (ack) => {
        pendingAcks--;
        acks++;
        if (!ack || ack.ok !== true) {
          errors++;
          const code = (ack && ack.error && ack.error.code) || "no-ack";
          errorCodes[code] = (errorCodes[code] || 0) + 1;
        }
        if (onAck) onAck();
      },
    );
  };
  // Connect-time work (presence announcements, subscriptions) settles before the first step.
  await sleep(spec.settleMs || 500);
  const summary = (offered, seconds) => {
    const sorted = latencies.slice().sort((a, b) => a - b);
    return {
      offered_per_second: offered,
      sent: latencies.length + sentAt.size,
      received,
      lost: sentAt.size,
      errors,
      error_codes: errorCodes,
      delivered_per_second: received / seconds,
      p50_ms: pct(sorted, 50),
      p99_ms: pct(sorted, 99),
      max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    };
  };
  const reset = () => {
    latencies = [];
    received = 0;
    errors = 0;
    errorCodes = {};
    sentAt.clear();
  };
  const results = { pairs: senders.length, connect_failures: { ...s.failures, ...r.failures }, rates: [] };
  // Open loop at fixed rates: a tick every 2 ms sends what the schedule owes, never catching up
  // more than 100 ms of backlog.
  for (const rate of spec.rates) {
    reset();
    const acks0 = acks;
    const cpu0 = cpuNow();
    // Other processes watched over the same window (the cluster's other nodes).
    const watched = Object.entries(spec.watchPids || {});
    const watched0 = watched.map(([, pid]) => cpuMicros(pid));
    const t0 = now();
    const end = t0 + spec.seconds * 1000;
    const cap = Math.ceil(rate / 10);
    let sentCount = 0;
    while (now() < end) {
      const due = Math.floor(((now() - t0) / 1000) * rate);
      const owed = Math.min(due - sentCount, cap);
      for (let k = 0; k < owed; k++) send();
      sentCount = due - sentCount > cap ? due : sentCount + Math.max(owed, 0);
      await sleep(2);
    }
    await drain(30000);
    const grace = now() + 2000;
    while (sentAt.size > 0 && now() < grace) await sleep(10);
    // Delivered per second over the time it really took, backlog included.
    const step = {
      ...summary(rate, Math.max(spec.seconds, (lastAt - t0) / 1000)),
      server_cpu_us_per_message: cpuPer(cpu0, acks - acks0),
    };
    if (watched.length) {
      step.watched_cpu_us_per_message = Object.fromEntries(
        watched.map(([name, pid], k) => [name, acks > acks0 ? (cpuMicros(pid) - watched0[k]) / (acks - acks0) : null]),
      );
    }
    results.rates.push(step);
    await sleep(300);
  }
  // Closed loop: `window` messages always in flight; the completion rate is the saturation rate.
  if (spec.saturationSeconds) {
    reset();
    let inflight = 0;
    let acked = 0;
    const cpu0 = cpuNow();
    const t0 = now();
    const end = t0 + spec.saturationSeconds * 1000;
    await new Promise((resolve) => {
      const pump = () => {
        while (inflight < spec.window && now() < end) {
          inflight++;
          send(() => {
            inflight--;
            acked++;
            if (now() < end) pump();
            else if (inflight === 0) resolve();
          });
        }
      };
      pump();
      setTimeout(resolve, spec.saturationSeconds * 1000 + 5000);
    });
    const seconds = (now() - t0) / 1000;
    const cpuPerMessage = cpuPer(cpu0, acked);
    const grace = now() + 2000;
    while (sentAt.size > 0 && now() < grace) await sleep(10);
    results.saturation = {
      ...summary(null, seconds),
      acked_per_second: acked / seconds,
      window: spec.window,
      server_cpu_us_per_message: cpuPerMessage,
    };
  }
  for (const c of senders) c.c.close();
  for (const c of receivers) c.close();
  return results;
}

// A storm: `count` authenticated connects spread evenly over `seconds`; none may be refused.
async function storm() {
  const users = range(0, spec.count).map(userId);
  const interval = (spec.seconds * 1000) / spec.count;
  const t0 = now();
  const latencies = [];
  const failures = {};
  const clients = [];
  const pending = [];
  for (let k = 0; k < users.length; k++) {
    const wait = t0 + k * interval - now();
    if (wait > 1) await sleep(wait);
    const c = new Client(spec.url, spec.ns, users[k]);
    pending.push(
      c.connect(20000).then(
        (ms) => {
          latencies.push(ms);
          clients.push(c);
        },
        (e) => {
          const key = e.message === "refused" ? `refused:${(e.data && e.data.code) || "?"}` : e.message;
          failures[key] = (failures[key] || 0) + 1;
        },
      ),
    );
  }
  await Promise.all(pending);
  const seconds = (now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  for (const c of clients) c.close();
  return {
    attempted: spec.count,
    connected: clients.length,
    failures,
    seconds,
    connect_p50_ms: pct(latencies, 50),
    connect_p99_ms: pct(latencies, 99),
    connect_max_ms: latencies.length ? latencies[latencies.length - 1] : null,
  };
}

// A node dies: `count` sockets on node A, which the generator SIGKILLs; every client reconnects
// at once to node B (`concurrency` handshakes in flight, as a balancer would spread them) with
// its `last_seq`. Time from the kill until every socket is connected, and until every socket
// that asked for a replay has had `messages:replayed`; per-socket p50/p99; B's CPU per reconnect.
async function failover() {
  const users = range(0, spec.count).map(userId);
  const convOf = new Map();
  (spec.conversations || []).forEach((conv, k) => {
    convOf.set(userId(2 * k), conv);
    convOf.set(userId(2 * k + 1), conv);
  });
  const auth = (u) => (convOf.has(u) ? { last_seq: { [convOf.get(u)]: 0 } } : undefined);
  const first = await connectMany(spec.url, spec.ns, users, { concurrency: 100, extraAuth: auth });
  await sleep(spec.settleMs || 1000);
  const cpu0 = cpuMicros(spec.survivorPid);
  const killedAt = now();
  process.kill(spec.killPid, "SIGKILL");
  for (const c of first.clients) c.close();
  const connectTimes = [];
  const resyncTimes = [];
  const replays = [];
  const failures = {};
  const reconnected = [];
  let next = 0;
  async function worker() {
    while (next < first.clients.length) {
      const u = first.clients[next++].user;
      const c = new Client(spec.failoverUrl, spec.ns, u, auth(u));
      const replayed = convOf.has(u)
        ? new Promise((resolve) => c.on("messages:replayed", () => resolve(now())))
        : null;
      try {
        await c.connect(30000);
        connectTimes.push(now() - killedAt);
        reconnected.push(c);
        if (replayed) replays.push(replayed.then((t) => resyncTimes.push(t - killedAt)));
      } catch (e) {
        const key = e.message === "refused" ? `refused:${(e.data && e.data.code) || "?"}` : e.message;
        failures[key] = (failures[key] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(spec.concurrency || 500, users.length) }, worker));
  const allConnectedMs = now() - killedAt;
  await Promise.race([Promise.all(replays), sleep(30000)]);
  const cpu1 = cpuMicros(spec.survivorPid);
  connectTimes.sort((a, b) => a - b);
  resyncTimes.sort((a, b) => a - b);
  for (const c of reconnected) c.close();
  return {
    sockets: first.clients.length,
    first_connect_failures: first.failures,
    reconnected: reconnected.length,
    failures,
    all_connected_ms: allConnectedMs,
    reconnect_p50_ms: pct(connectTimes, 50),
    reconnect_p99_ms: pct(connectTimes, 99),
    replays_asked: replays.length,
    resynced: resyncTimes.length,
    all_resynced_ms: resyncTimes.length ? resyncTimes[resyncTimes.length - 1] : null,
    resync_p50_ms: pct(resyncTimes, 50),
    resync_p99_ms: pct(resyncTimes, 99),
    survivor_cpu_us_per_reconnect: reconnected.length ? (cpu1 - cpu0) / reconnected.length : null,
    reconnects_per_second: reconnected.length / (allConnectedMs / 1000),
  };
}

// -- main -------------------------------------------------------------------------------------

const payloads = {
  // Same shape on every server: what a creator's paid broadcast sends.
  ppv: (rep) => ({
    client_id: `bench-${process.pid}-${Date.now()}-${rep}`,
    body: "New set is up! Unlock to see it.",
    price_cents: 499,
    currency: "usd",
    preview_text: "New set is up!",
  }),
  room: (rep, n) => ({ seq: rep, receivers: n, body: "New set is up! Unlock to see it.", price_cents: 499 }),
};

async function main() {
  if (spec.payload) spec.payload = payloads[spec.payload];
  const hardStop = setTimeout(() => {
    process.stdout.write(JSON.stringify({ error: "loadgen time limit reached" }) + "\n");
    process.exit(3);
  }, (spec.timeLimitSeconds || 300) * 1000);
  const run = { idle, fanout, pairs, storm, failover }[spec.scenario];
  const result = await run();
  clearTimeout(hardStop);
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String((e && e.stack) || e) }) + "\n");
  process.exit(2);
});
