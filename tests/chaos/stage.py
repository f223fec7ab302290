"""The chaos test's world: a private Postgres and Redis, two node processes that can be killed,
drained and restarted on their ports, and the users and conversations of the story."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from backchannel.persistence.migrations import migrate
from tests.conftest import TEST_JWT_SECRET
from tests.outages import PostgresServer, RedisServer
from tests.processes import ServerProcess, settings_env, start_server
from tests.support import Api, Sockets, User

# Outages are noticed and recovered from within a second or two (as tests/server/
# test_resilience.py), and nothing under test here is a rate limit: 24 users on one IP.
NODE_SETTINGS = {
    "BACKCHANNEL_REDIS_PING_INTERVAL_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_RETRY_MAX_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_TIMEOUT_SECONDS": "1",
    "BACKCHANNEL_DB_POOL_MIN_SIZE": "1",
    "BACKCHANNEL_DB_POOL_MAX_SIZE": "6",
    "BACKCHANNEL_DB_STATEMENT_TIMEOUT_MS": "3000",
    "BACKCHANNEL_SHUTDOWN_GRACE_SECONDS": "2",
    "BACKCHANNEL_DEV_TOPUP": "true",
    "BACKCHANNEL_MESSAGE_RATE_LIMIT": "1000/10s:200",
    "BACKCHANNEL_CONNECT_RATE_LIMIT": "100000/60s:10000",
    "BACKCHANNEL_SOCKET_EVENT_RATE_LIMIT": "100000/10s:10000",
    "BACKCHANNEL_HTTP_IP_RATE_LIMIT": "100000/60s:10000",
    "BACKCHANNEL_HTTP_USER_RATE_LIMIT": "100000/60s:10000",
}


@dataclass
class Cluster:
    """Two nodes on fixed ports over one Postgres and one Redis, all of them breakable."""

    postgres: PostgresServer
    redis: RedisServer
    database_url: str
    env: dict[str, str]
    log_dir: Path
    nodes: list[ServerProcess] = field(default_factory=list)
    incarnations: list[int] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        """Where clients find the nodes (the same ports after every restart)."""
        return [node.url for node in self.nodes]

    def _launch(self, index: int, port: int | None = None) -> ServerProcess:
        self.incarnations[index] += 1
        folder = self.log_dir / f"node{index}-{self.incarnations[index]}"
        folder.mkdir()
        return start_server(self.env, folder, port=port)

    async def start_nodes(self, count: int) -> None:
        """Start `count` nodes and wait until all are ready."""
        self.incarnations = [0] * count
        self.nodes = [self._launch(i) for i in range(count)]
        await asyncio.gather(*(node.wait_ready(60) for node in self.nodes))

    async def restart(self, index: int) -> None:
        """Start node `index` again on its port (after a kill or a drain)."""
        self.nodes[index] = self._launch(index, self.nodes[index].port)
        await self.nodes[index].wait_ready(60)

    async def terminate_backends(self) -> int:
        """Kill every server process of the database (what a failover does to clients)."""
        conn = await asyncpg.connect(self.postgres.url())
        try:
            killed: int = await conn.fetchval(
                "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = 'chaos' and pid <> pg_backend_pid()) t"
            )
        finally:
            await conn.close()
        return killed

    def log_counts(self) -> dict[str, tuple[int, int]]:
        """(warning lines, tracebacks) each node incarnation logged."""
        counts = {}
        for log in sorted(self.log_dir.glob("node*/server-*.log")):
            text = log.read_text(errors="replace")
            counts[log.parent.name] = (
                len(re.findall(r'"level": "warning"', text)),
                len(re.findall(r"Traceback", text)),
            )
        return counts


@asynccontextmanager
async def cluster(tmp_path: Path, nodes: int = 2) -> AsyncIterator[Cluster]:
    """A private Postgres (its own database `chaos`, migrated), a private Redis, `nodes` nodes."""
    postgres = PostgresServer(tmp_path)
    redis = RedisServer(tmp_path)
    started: Cluster | None = None
    try:
        await postgres.start()
        await redis.start()
        admin = await asyncpg.connect(postgres.url())
        try:
            await admin.execute("create database chaos")
        finally:
            await admin.close()
        database_url = postgres.url("chaos")
        await migrate(database_url)
        env = settings_env(
            database_url=database_url,
            redis_url=redis.url,
            redis_prefix="chaos",
            jwt_secret=TEST_JWT_SECRET,
            data_dir=tmp_path,
        )
        env.update(NODE_SETTINGS)
        started = Cluster(postgres, redis, database_url, env, tmp_path)
        await started.start_nodes(nodes)
        yield started
    finally:
        if started is not None:
            for node in started.nodes:
                node.kill()
        redis.stop()
        postgres.close()


@dataclass
class Cast:
    """Who is in the story and which conversations they share."""

    creators: list[User]
    fans: list[User]
    # conversation id -> participant user ids
    conversations: dict[str, list[str]]

    def of(self, user: User) -> list[str]:
        """The conversations `user` is in, in a fixed order."""
        return [c for c, members in self.conversations.items() if user.id in members]


async def cast(urls: list[str], creators: int, fans: int) -> Cast:
    """Register everyone, open one DM per fan with creator `i % creators`, and two groups."""
    async with aiohttp.ClientSession() as session:
        apis = [Api(url, session) for url in urls]
        made_creators = list(
            await asyncio.gather(*(apis[i % 2].register("creator") for i in range(creators)))
        )
        made_fans = list(await asyncio.gather(*(apis[i % 2].register() for i in range(fans))))
    sockets = Sockets(urls[0])
    conversations: dict[str, list[str]] = {}
    try:
        for i, fan in enumerate(made_fans):
            creator = made_creators[i % creators]
            opened = await _open(sockets, fan, [creator])
            conversations[opened] = [fan.id, creator.id]
        for g in range(2):
            owner = made_creators[g]
            members = [made_fans[k] for k in range(g * 3, g * 3 + 3)] + [made_fans[6 + g]]
            opened = await _open(sockets, owner, members)
            conversations[opened] = [owner.id, *(m.id for m in members)]
    finally:
        await sockets.close_all()
    return Cast(made_creators, made_fans, conversations)


async def _open(sockets: Sockets, opener: User, others: list[User]) -> str:
    socket = await sockets.connect("/chat", opener)
    ack = await socket.call("conversation:open", {"participant_ids": [o.id for o in others]})
    assert ack["ok"], ack
    await socket.disconnect()
    return str(ack["data"]["id"])
