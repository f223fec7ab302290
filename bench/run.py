"""`make bench`: Backchannel against its peers, one scenario at a time, in one run.

Each server runs pinned to CPU 0 and the load generator (`loadgen.js`) to CPU 1. Every server is
restarted for every scenario so memory and CPU figures start clean. Backchannel runs with auth
and Postgres (a dedicated `bench_*` database created here and dropped at the end), and with Redis
in the cluster scenario (its own key prefix). Results: bench/results/<timestamp>.json, .md and
.png (see report.py).

    python bench/run.py [--scale smoke|quick|full] [--only backchannel,bare,node] [--scenarios a,b]
        [--results DIR]

`smoke` is seconds per scenario, to check the bench itself works (tests/bench).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
SERVER_CPU, LOADGEN_CPU = "0", "1"
# The cores the nodes of the `scaling` scenario are pinned to, round robin. On this 2-core
# machine only the server core: 2 and 4 nodes then share one core, which measures what the
# cluster's own traffic costs (contention), not added capacity. Give it more on a bigger box.
SCALING_CPUS = os.environ.get("BENCH_SCALING_CPUS", SERVER_CPU).split(",")
BUDGET_SECONDS = 13.5 * 60  # `make bench` must finish within 15 minutes
CREATOR = "bench-creator"
SERVERS = ("backchannel", "bare", "node")
LABELS = {
    "backchannel": "Backchannel",
    "bare": "python-socketio (bare)",
    "node": "Node socket.io",
}

SCALES: dict[str, dict[str, Any]] = {
    # A few seconds per scenario, for development on a shared machine.
    "quick": {
        "idle_steps": [200, 500, 1000],
        "fanout_steps": [200, 1000],
        "fanout_repeats": 3,
        "pairs": 200,
        "rates": [500, 1000],
        "seconds": 2,
        "saturation_seconds": 2,
        "storm": (300, 3),
        "failover": 1000,
        "cluster_rate": 300,
        "scaling_nodes": [1, 2, 4],
        "scaling_pairs": 200,
        "scaling_seconds": 2,
        "repeats": 1,
    },
    # Seconds in all: what tests/bench runs to check that the bench itself works.
    "smoke": {
        "idle_steps": [20],
        "fanout_steps": [20],
        "fanout_repeats": 1,
        "pairs": 20,
        "rates": [100],
        "seconds": 1,
        "saturation_seconds": 1,
        "storm": (20, 1),
        "failover": 20,
        "cluster_rate": 100,
        "scaling_nodes": [1, 2],
        "scaling_pairs": 20,
        "scaling_seconds": 1,
        "repeats": 1,
    },
    "full": {
        "idle_steps": [1000, 5000, 10000],
        "fanout_steps": [1000, 5000, 10000],
        "fanout_repeats": 5,
        "pairs": 500,
        "rates": [1000, 5000],
        "seconds": 5,
        "saturation_seconds": 5,
        "storm": (2000, 10),
        "failover": 10000,
        # Both nodes share the server core (2 cores in all): a rate they sustain together.
        "cluster_rate": 300,
        "scaling_nodes": [1, 2, 4],
        "scaling_pairs": 500,
        "scaling_seconds": 5,
        "repeats": 3,
    },
}


def log(*parts: Any) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}]", *parts, file=sys.stderr, flush=True)


def user_id(i: int) -> str:
    return f"bench-u{i:06d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the database ---------------------------------------------------------------------------


async def create_database(name: str, users: int, pairs: int) -> dict[str, Any]:
    """A fresh database: migrated, with users, subscriptions and conversations."""
    from backchannel.persistence.migrations import migrate

    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        fans = [user_id(i) for i in range(users)]
        await conn.copy_records_to_table(
            "users",
            records=[(CREATOR, f"{CREATOR}@bench.invalid", "Bench Creator", "creator")]
            + [(u, f"{u}@bench.invalid", u, "fan") for u in fans],
            columns=["id", "email", "display_name", "role"],
        )
        await conn.copy_records_to_table(
            "subscriptions",
            records=[(u, CREATOR, "active") for u in fans],
            columns=["fan_id", "creator_id", "status"],
        )
        # One 1:1 conversation per pair (u0, u1), (u2, u3), ... and one per fan with the creator.
        direct = [(fans[2 * k], fans[2 * k + 1]) for k in range(pairs)]
        direct += [(CREATOR, u) for u in fans]
        rows = await conn.fetch(
            """
            insert into conversations (kind, direct_key, created_by)
            select 'direct', k, c from unnest($1::text[], $2::text[]) as t(k, c)
            returning id, direct_key
            """,
            [" ".join(sorted(pair)) for pair in direct],
            [pair[0] for pair in direct],
        )
        ids = {r["direct_key"]: r["id"] for r in rows}
        members = []
        for a, b in direct:
            cid = ids[" ".join(sorted((a, b)))]
            members += [(cid, a), (cid, b)]
        await conn.copy_records_to_table(
            "conversation_members", records=members, columns=["conversation_id", "user_id"]
        )
        pair_ids = [str(ids[" ".join(sorted(p))]) for p in direct[:pairs]]
    finally:
        await conn.close()
    return {"dsn": dsn, "pair_conversations": pair_ids}


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


async def forget_redis_keys(prefix: str) -> None:
    """Delete what the run's nodes left in Redis under their prefix (killed, not drained)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


# -- servers --------------------------------------------------------------------------------


class Server:
    """One server process pinned to the server CPU."""

    def __init__(
        self, kind: str, port: int, env: dict[str, str], workdir: Path, cpu: str = SERVER_CPU
    ) -> None:
        self.kind, self.port = kind, port
        python = sys.executable
        if kind == "backchannel":
            cmd = [python, str(BENCH / "backchannel_server.py")]
        elif kind == "bare":
            cmd = [python, str(BENCH / "peers" / "bare_socketio.py"), str(port)]
        else:
            cmd = ["node", str(BENCH / "peers" / "node_socketio.js"), str(port)]
        self.log_path = workdir / f"{kind}-{port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *cmd],
            env=self._environment(env, port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    @staticmethod
    def _environment(env: dict[str, str], port: int) -> dict[str, str]:
        full = {**os.environ, **env, "BACKCHANNEL_PORT": str(port)}
        if "REDIS_URL" not in env:
            full.pop("REDIS_URL", None)
        return full

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class Bench:
    """The state of one run: database, secret, settings per server kind."""

    def __init__(self, scale: dict[str, Any], workdir: Path) -> None:
        self.scale = scale
        self.workdir = workdir
        self.secret = secrets.token_urlsafe(32)
        self.prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.db: dict[str, Any] = {}

    def env(self, kind: str, redis: bool = False) -> dict[str, str]:
        if kind != "backchannel":
            return {}
        env = {
            "DATABASE_URL": self.db["dsn"],
            "BACKCHANNEL_HOST": "127.0.0.1",
            "BACKCHANNEL_JWT_SECRET": self.secret,
            "BACKCHANNEL_LOG_LEVEL": "warning",
            "BACKCHANNEL_DATA_DIR": str(self.workdir / "var"),
            "BACKCHANNEL_MIGRATE_ON_START": "false",
            # Throughput is measured here, not the per-user limit (its cost is still paid).
            "BACKCHANNEL_MESSAGE_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_BROADCAST_RATE_LIMIT": "1000000/1s:1000000",
            # Every generated socket comes from 127.0.0.1: per-IP and per-socket limits would
            # refuse the load itself. They are still checked on every connect and event.
            "BACKCHANNEL_CONNECT_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_SOCKET_EVENT_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_HTTP_IP_RATE_LIMIT": "1000000/1s:1000000",
            "BACKCHANNEL_HTTP_USER_RATE_LIMIT": "1000000/1s:1000000",
            # The load generator opens many handshakes at once from one IP.
            "BACKCHANNEL_MAX_UNAUTHENTICATED_PER_IP": "100000",
            "BACKCHANNEL_REDIS_PREFIX": self.prefix,
            # The 1:1 pairs are fans (fan-to-fan DMs are off by default: every send refused).
            "BACKCHANNEL_FAN_TO_FAN_DMS": "true",
        }
        if redis:
            env["REDIS_URL"] = REDIS_URL
        return env

    @contextlib.contextmanager
    def server(
        self, kind: str, redis: bool = False, extra: dict[str, str] | None = None
    ) -> Iterator[Server]:
        srv = Server(kind, free_port(), {**self.env(kind, redis), **(extra or {})}, self.workdir)
        try:
            srv.wait_ready()
            yield srv
        finally:
            srv.stop()

    @contextlib.contextmanager
    def cluster(self, nodes: int, extra: dict[str, str]) -> Iterator[list[Server]]:
        """`nodes` Backchannel nodes on Redis, started together, pinned over SCALING_CPUS."""
        servers: list[Server] = []
        try:
            for i in range(nodes):
                env = {**self.env("backchannel", redis=True), **extra}
                cpu = SCALING_CPUS[i % len(SCALING_CPUS)]
                servers.append(Server("backchannel", free_port(), env, self.workdir, cpu))
            for srv in servers:
                srv.wait_ready()
            yield servers
        finally:
            for srv in servers:
                srv.stop()

    def loadgen(self, spec: dict[str, Any], time_limit: int = 240) -> dict[str, Any]:
        spec = {"secret": self.secret, "timeLimitSeconds": time_limit, **spec}
        proc = subprocess.run(
            ["taskset", "-c", LOADGEN_CPU, "node", str(BENCH / "loadgen.js"), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=time_limit + 30,
        )
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"loadgen printed nothing: {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        if "error" in result:
            raise RuntimeError(f"loadgen: {result['error']}")
        return result


# -- scenarios ------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    xs = sorted(v for v in values if v is not None)
    return xs[len(xs) // 2] if xs else None


def scenario_idle(b: Bench, kind: str) -> dict[str, Any]:
    """Memory per idle authenticated connection at each step; connects per second."""
    runs = []
    for _ in range(b.scale["repeats"]):
        with b.server(kind) as srv:
            runs.append(
                b.loadgen(
                    {
                        "scenario": "idle",
                        "url": srv.url,
                        "ns": "/chat",
                        "pid": srv.proc.pid,
                        "steps": b.scale["idle_steps"],
                    }
                )
            )
    steps = []
    for i, target in enumerate(b.scale["idle_steps"]):
        per = [r["steps"][i] for r in runs]
        steps.append(
            {
                "connections": target,
                "bytes_per_connection": median([p["bytes_per_connection"] for p in per]),
                "connects_per_second": median([p["connects_per_second"] for p in per]),
                "server_cpu_us_per_connect": median([p["server_cpu_us_per_connect"] for p in per]),
                "failures": [p["failures"] for p in per],
            }
        )
    return {"steps": steps, "runs": runs}


def scenario_fanout(b: Bench, kind: str, variant: str) -> dict[str, Any]:
    """One creator's broadcast to every online subscriber: `room` (plain) or `ppv`."""
    ppv = variant == "ppv"
    with b.server(kind) as srv:
        return b.loadgen(
            {
                "scenario": "fanout",
                "url": srv.url,
                "ns": "/chat",
                "pid": srv.proc.pid,
                "sender": CREATOR,
                "senderNs": "/ppv" if ppv else "/chat",
                "trigger": "ppv:broadcast" if ppv else "bench:broadcast",
                "event": "message:broadcast" if ppv else "bench:news",
                "payload": variant,
                "steps": b.scale["fanout_steps"],
                "repeats": b.scale["fanout_repeats"],
                "timeoutMs": 20000,
            }
        )


def conversations_for(b: Bench, kind: str) -> list[str]:
    if kind == "backchannel":
        return list(b.db["pair_conversations"])
    # The peers have no database: a conversation id names its two members.
    return [f"{user_id(2 * k)} {user_id(2 * k + 1)}" for k in range(b.scale["pairs"])]


def scenario_latency(b: Bench, kind: str) -> dict[str, Any]:
    """1:1 message:send -> message:new at fixed rates, then closed-loop saturation."""
    with b.server(kind) as srv:
        return b.loadgen(
            {
                "scenario": "pairs",
                "url": srv.url,
                "ns": "/chat",
                "pid": srv.proc.pid,
                "pairs": b.scale["pairs"],
                "conversations": conversations_for(b, kind),
                "rates": b.scale["rates"],
                "seconds": b.scale["seconds"],
                "saturationSeconds": b.scale["saturation_seconds"],
                "window": 256,
            }
        )


def scenario_storm(b: Bench, kind: str) -> dict[str, Any]:
    """`count` authenticated connects spread over `seconds`."""
    count, seconds = b.scale["storm"]
    with b.server(kind) as srv:
        return b.loadgen(
            {
                "scenario": "storm",
                "url": srv.url,
                "ns": "/chat",
                "count": count,
                "seconds": seconds,
            }
        )


def scenario_cluster(b: Bench, kind: str) -> dict[str, Any]:
    """Two Backchannel nodes on Redis: 1:1 latency with both ends on one node, then across."""
    if kind != "backchannel":
        return {"skipped": "Backchannel only"}
    rate = b.scale["cluster_rate"]
    spec = {
        "scenario": "pairs",
        "ns": "/chat",
        "pairs": b.scale["pairs"],
        "conversations": conversations_for(b, kind),
        "rates": [rate],
        "seconds": b.scale["seconds"],
    }
    with b.server(kind, redis=True) as a, b.server(kind, redis=True) as other:
        same = b.loadgen({**spec, "url": a.url})
        cross = b.loadgen({**spec, "url": a.url, "receiverUrl": other.url})
    s, c = same["rates"][0], cross["rates"][0]
    return {
        "rate": rate,
        "same_node": same,
        "cross_node": cross,
        "overhead_p50_ms": c["p50_ms"] - s["p50_ms"] if c["p50_ms"] and s["p50_ms"] else None,
        "overhead_p99_ms": c["p99_ms"] - s["p99_ms"] if c["p99_ms"] and s["p99_ms"] else None,
    }


def scenario_foreign(b: Bench, kind: str) -> dict[str, Any]:
    """Three nodes: pairs chat between A (senders) and C (receivers); B holds none of them.

    B's CPU per message is what every uninvolved node pays per cluster message: near zero when
    routed, the decoding of every emit with one channel. A's and C's costs feed the projected
    ceiling of 1, 2, 4 ... nodes (see `projected`).
    """
    if kind != "backchannel":
        return {"skipped": "Backchannel only"}
    rate = b.scale["cluster_rate"]
    spec = {
        "scenario": "pairs",
        "ns": "/chat",
        "pairs": b.scale["pairs"],
        "conversations": conversations_for(b, kind),
        "rates": [rate],
        "seconds": b.scale["seconds"],
    }
    modes: dict[str, Any] = {}
    for routing in ("single", "routed"):
        extra = {"BACKCHANNEL_CLUSTER_ROUTING": routing}
        with (
            b.server(kind, redis=True, extra=extra) as a,
            b.server(kind, redis=True, extra=extra) as idle,
            b.server(kind, redis=True, extra=extra) as c,
        ):
            watch = {"b": idle.proc.pid, "c": c.proc.pid}
            run = b.loadgen(
                {
                    **spec,
                    "url": a.url,
                    "receiverUrl": c.url,
                    "pid": a.proc.pid,
                    "watchPids": watch,
                    "settleMs": 4000,
                }
            )
        step = run["rates"][0]
        watched = step.get("watched_cpu_us_per_message") or {}
        modes[routing] = {
            "run": run,
            "sender_cpu_us_per_message": step.get("server_cpu_us_per_message"),
            "receiver_cpu_us_per_message": watched.get("c"),
            "foreign_cpu_us_per_message": watched.get("b"),
            "messages": step["received"],
        }
    return {"rate": rate, "modes": modes, "projected": projected(modes)}


def scenario_failover(b: Bench, kind: str) -> dict[str, Any]:
    """Reconnect storm: `failover` sockets on node A; A is SIGKILLed; all reconnect to B with
    their `last_seq` (the pair users replay their conversation)."""
    if kind != "backchannel":
        return {"skipped": "Backchannel only"}
    with b.server(kind, redis=True) as a, b.server(kind, redis=True) as survivor:
        return b.loadgen(
            {
                "scenario": "failover",
                "url": a.url,
                "failoverUrl": survivor.url,
                "ns": "/chat",
                "count": b.scale["failover"],
                "conversations": conversations_for(b, kind),
                "killPid": a.proc.pid,
                "survivorPid": survivor.proc.pid,
                "concurrency": 500,
            }
        )


def scenario_scaling(b: Bench, kind: str) -> dict[str, Any]:
    """Measured cluster 1:1 throughput with 1, 2, 4 ... nodes, routed and single-channel.

    The pairs are spread over the nodes (both ends on one node 1/N of the time) and driven in
    a closed loop (256 in flight): the ack rate is the cluster's saturation rate; the CPU of
    every node is summed per message. The nodes are pinned over SCALING_CPUS: on the 2-core
    machine all on the one server core, so more nodes add cluster traffic, not cores.
    """
    if kind != "backchannel":
        return {"skipped": "Backchannel only"}
    pairs = b.scale["scaling_pairs"]
    modes: dict[str, Any] = {}
    for routing in ("single", "routed"):
        rows = []
        for n in b.scale["scaling_nodes"]:
            t0 = time.monotonic()
            with b.cluster(n, {"BACKCHANNEL_CLUSTER_ROUTING": routing}) as nodes:
                log(f"scaling: {routing}, {n} node(s) up in {time.monotonic() - t0:.1f}s")
                run = b.loadgen(
                    {
                        "scenario": "pairs",
                        "ns": "/chat",
                        "urls": [srv.url for srv in nodes],
                        "pids": [srv.proc.pid for srv in nodes],
                        "pairs": pairs,
                        "conversations": conversations_for(b, kind)[:pairs],
                        "rates": [],
                        "seconds": 0,
                        "saturationSeconds": b.scale["scaling_seconds"],
                        "window": 256,
                        "settleMs": 1000,
                    }
                )
            log(f"scaling: {routing}, {n} node(s) done in {time.monotonic() - t0:.1f}s")
            sat = run.get("saturation") or {}
            rows.append(
                {
                    "nodes": n,
                    "cores": len({SCALING_CPUS[i % len(SCALING_CPUS)] for i in range(n)}),
                    "acked_per_second": sat.get("acked_per_second"),
                    "cluster_cpu_us_per_message": sat.get("server_cpu_us_per_message"),
                    "p50_ms": sat.get("p50_ms"),
                    "p99_ms": sat.get("p99_ms"),
                    "errors": sat.get("errors"),
                    "error_codes": sat.get("error_codes"),
                    "pairs": run.get("pairs"),
                    "connect_failures": run.get("connect_failures"),
                }
            )
        modes[routing] = rows
    return {"pairs": pairs, "cpus": SCALING_CPUS, "modes": modes}


def projected(modes: dict[str, Any], nodes: tuple[int, ...] = (1, 2, 4, 8, 16)) -> dict[str, Any]:
    """Cluster 1:1 ceiling (messages/s, one core per node) from the measured per-message costs.

    With N nodes and each conversation's two ends on random nodes, a message costs its sender's
    node `s`, its receiver's node `r` (the same node 1/N of the time, paying about `s`), and
    each of the other nodes `f` (zero when routed). Per node and per cluster message/s that is
    (s + r) / N + f (N - 2) / N; one core (1e6 us/s) over that is the ceiling.
    """
    table: dict[str, Any] = {}
    for routing, m in modes.items():
        s = m["sender_cpu_us_per_message"] or 0.0
        r = m["receiver_cpu_us_per_message"] or 0.0
        f = m["foreign_cpu_us_per_message"] or 0.0
        row = {}
        for n in nodes:
            per_node = (s + r) / n + f * max(0, n - 2) / n
            row[str(n)] = round(1e6 / per_node) if per_node > 0 else None
        table[routing] = row
    return table


SCENARIOS = {
    "idle": scenario_idle,
    "fanout_room": lambda b, k: scenario_fanout(b, k, "room"),
    "fanout_ppv": lambda b, k: scenario_fanout(b, k, "ppv"),
    "latency": scenario_latency,
    "cluster": scenario_cluster,
    "foreign": scenario_foreign,
    "failover": scenario_failover,
    "storm": scenario_storm,
    # Last: ~2 minutes at full sizes (six cluster start-ups); if the run's budget is spent it
    # is the one recorded as skipped, not the older scenarios.
    "scaling": scenario_scaling,
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "load_average": os.getloadavg(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {p: version(p) for p in ("python-socketio", "python-engineio", "aiohttp", "uvloop")}
    lock = json.loads((BENCH / "package-lock.json").read_text())
    for name in ("socket.io", "ws"):
        found[name] = lock["packages"][f"node_modules/{name}"]["version"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the report goes")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    kinds = [k for k in args.only.split(",") if k]
    chosen = [s for s in args.scenarios.split(",") if s]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"backchannel-bench-{stamp}"
    workdir.mkdir(parents=True)
    bench = Bench(scale, workdir)
    db_name = f"bench_{stamp.lower()}_{os.getpid()}"
    users = (
        max(
            scale["idle_steps"][-1],
            scale["fanout_steps"][-1],
            scale["storm"][0],
            scale["failover"],
            2 * scale["pairs"],
        )
        + 10
    )
    started = time.monotonic()
    report: dict[str, Any] = {
        "timestamp": stamp,
        "scale": args.scale,
        "params": scale,
        "machine": machine(),
        "versions": versions(),
        "scenarios": {},
    }
    try:
        log(f"creating database {db_name} with {users} users")
        bench.db = asyncio.run(create_database(db_name, users, scale["pairs"]))
        for name in chosen:
            report["scenarios"][name] = {}
            for kind in kinds:
                if time.monotonic() - started > BUDGET_SECONDS:
                    log(f"{name}: {kind} skipped, the run's time budget is spent")
                    report["scenarios"][name][kind] = {"error": "skipped: time budget spent"}
                    continue
                log(f"{name}: {kind}")
                t0 = time.monotonic()
                try:
                    result = SCENARIOS[name](bench, kind)
                except Exception as exc:  # one failing scenario must not lose the others
                    log(f"{name}: {kind} failed: {exc}")
                    result = {"error": str(exc)[-2000:]}
                result["seconds"] = round(time.monotonic() - t0, 1)
                report["scenarios"][name][kind] = result
    finally:
        asyncio.run(drop_database(db_name))
        asyncio.run(forget_redis_keys(bench.prefix))
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"]["load_average_after"] = os.getloadavg()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=1))
    from report import write_report

    write_report(out)
    log(f"done in {report['seconds']}s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
