"""SIGTERM: what was in flight is acked, what comes after is refused, and the node is gone in time.

A node that is told to stop answers the sends it already holds (their acks reach the client
before the transport closes), answers every later event `unavailable` without storing it, so
the client resends to another node with the same `client_id`, and exits within
`BACKCHANNEL_SHUTDOWN_GRACE_SECONDS` even when a send is stuck past the grace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.chat_support import open_dm
from tests.conftest import TEST_JWT_SECRET
from tests.processes import ServerProcess, settings_env, start_server
from tests.services import RunServices
from tests.support import Api, Sockets, User

pytestmark = pytest.mark.slow

GRACE_SECONDS = 2.0
# What the exit may take past the grace: closing the pool, Redis and the loop.
EXIT_MARGIN_SECONDS = 1.5


@dataclass
class Stage:
    """A node, a creator and a fan who share a conversation, and a way to stall its sends."""

    node: ServerProcess
    sockets: Sockets
    creator: User
    fan: User
    conversation_id: str
    database_url: str
    node_env: dict[str, str]


@asynccontextmanager
async def stage(services: RunServices, tmp_path: Path) -> AsyncIterator[Stage]:
    env = settings_env(
        database_url=services.database_url,
        redis_url=None,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env["BACKCHANNEL_SHUTDOWN_GRACE_SECONDS"] = str(GRACE_SECONDS)
    node = start_server(env, tmp_path)
    sockets = Sockets(node.url)
    try:
        await node.wait_ready()
        async with aiohttp.ClientSession() as session:
            api = Api(node.url, session)
            creator = await api.register("creator")
            fan = await api.register("fan")
        conversation_id = await open_dm(sockets, fan, creator)
        yield Stage(node, sockets, creator, fan, conversation_id, services.database_url, env)
    finally:
        await sockets.close_all()
        node.kill()


@asynccontextmanager
async def conversation_locked(database_url: str, conversation_id: str) -> AsyncIterator[None]:
    """Hold the conversation's row lock, as a long paid broadcast does, so sends wait on it."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                "select 1 from conversations where id = $1::bigint for update", int(conversation_id)
            )
            yield
    finally:
        await conn.close()


async def stored_client_ids(database_url: str, conversation_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select client_id from messages where conversation_id = $1::bigint",
            int(conversation_id),
        )
    finally:
        await conn.close()
    return [str(row["client_id"]) for row in rows]


def send(conversation_id: str, body: str) -> dict[str, str]:
    return {"conversation_id": conversation_id, "client_id": str(uuid.uuid4()), "body": body}


async def test_a_send_in_flight_is_acked_and_a_send_after_sigterm_is_refused_unstored(
    services: RunServices, tmp_path: Path
) -> None:
    async with stage(services, tmp_path) as s:
        fan = await s.sockets.connect("/chat", s.fan)
        creator = await s.sockets.connect("/chat", s.creator)
        first = send(s.conversation_id, "sent before the restart")
        late = send(s.conversation_id, "sent during the drain")
        async with conversation_locked(s.database_url, s.conversation_id):
            in_flight = asyncio.create_task(fan.call("message:send", first, timeout=10))
            await asyncio.sleep(0.3)  # the send is waiting on the row lock
            s.node.process.send_signal(15)
            await creator.wait_for("server:shutdown")  # the node is draining
            refused = await creator.call("message:send", late, timeout=5)
        acked = await in_flight
        assert acked["ok"], acked
        assert acked["data"]["client_id"] == first["client_id"]
        assert refused["ok"] is False
        assert refused["error"]["code"] == "unavailable", refused
        assert await asyncio.to_thread(s.node.process.wait, 10) == 0, s.node.log()
        stored = await stored_client_ids(s.database_url, s.conversation_id)
        assert first["client_id"] in stored
        assert late["client_id"] not in stored


async def test_a_send_stuck_past_the_grace_does_not_hold_the_exit_and_its_resend_is_stored_once(
    services: RunServices, tmp_path: Path
) -> None:
    async with stage(services, tmp_path) as s:
        fan = await s.sockets.connect("/chat", s.fan)
        stuck = send(s.conversation_id, "waits on a lock held past the grace")
        async with conversation_locked(s.database_url, s.conversation_id):
            pending = asyncio.create_task(fan.call("message:send", stuck, timeout=30))
            await asyncio.sleep(0.3)  # the send is waiting on the row lock
            started = time.monotonic()
            s.node.process.send_signal(15)
            code = await asyncio.to_thread(s.node.process.wait, 30)
            took = time.monotonic() - started
        assert code == 0, s.node.log()
        assert took <= GRACE_SECONDS + EXIT_MARGIN_SECONDS, (took, s.node.log())
        pending.cancel()
        # Its socket closed unanswered, so the client resends with the same client_id to the
        # node that replaces this one; whatever the stopped node left behind, it is one message.
        replacement = start_server(s.node_env, tmp_path)
        try:
            await replacement.wait_ready()
            again = await Sockets(replacement.url).connect("/chat", s.fan)
            acked = await again.call("message:send", stuck)
            await again.disconnect()
        finally:
            replacement.kill()
        assert acked["ok"], acked
        stored = await stored_client_ids(s.database_url, s.conversation_id)
        assert stored.count(stuck["client_id"]) == 1


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_sigterm_with_sockets_open_exits_within_the_grace(
    services: RunServices, tmp_path: Path, transport: str
) -> None:
    async with stage(services, tmp_path) as s:
        import socketio

        clients = []
        for user in (s.fan, s.creator):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                s.node.url,
                namespaces=["/chat", "/presence", "/notifications"],
                auth={"token": user.access_token},
                transports=[transport],
            )
            clients.append(client)
        started = time.monotonic()
        s.node.process.send_signal(15)
        code = await asyncio.to_thread(s.node.process.wait, 30)
        took = time.monotonic() - started
        for client in clients:
            await client.disconnect()
        assert code == 0, s.node.log()
        assert took <= GRACE_SECONDS + EXIT_MARGIN_SECONDS, (took, s.node.log())
