"""Real server processes outlive their dependencies and each other.

Redis restarts, Postgres goes away and comes back, a node is SIGKILLed or drained: the nodes
recover by themselves, `/readyz` says what is wrong while it is wrong, and clients that
reconnect and resync have every acked message exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import aiohttp
import pytest

from backchannel.handlers.chat import ChatNamespace
from tests.conftest import TEST_JWT_SECRET
from tests.nodes import eventually
from tests.outages import RedisServer, TcpProxy
from tests.processes import ServerProcess, settings_env, start_server
from tests.services import RunServices
from tests.support import Api, Socket, Sockets, User


def _chat_has(event: str) -> bool:
    return any(
        getattr(attr, "__backchannel_event__", (None,))[0] == event
        for attr in vars(ChatNamespace).values()
    )


pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    # These stories are told with chat messages, the thing a client must not lose.
    pytest.mark.skipif(not _chat_has("message:send"), reason="needs /chat message:send (#3)"),
]

# Small timeouts so each outage is noticed and recovered from within a second or two.
FAST = {
    "BACKCHANNEL_REDIS_PING_INTERVAL_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_RETRY_MAX_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_TIMEOUT_SECONDS": "1",
    "BACKCHANNEL_DB_POOL_MIN_SIZE": "1",
    "BACKCHANNEL_DB_POOL_MAX_SIZE": "3",
    "BACKCHANNEL_DB_STATEMENT_TIMEOUT_MS": "1000",
    "BACKCHANNEL_SHUTDOWN_GRACE_SECONDS": "2",
}


@contextmanager
def nodes(
    services: RunServices,
    tmp_path: Path,
    count: int,
    *,
    redis_url: str | None,
    database_url: str | None = None,
) -> Iterator[list[ServerProcess]]:
    """`count` server processes sharing one database and one Redis; killed afterwards."""
    env = settings_env(
        database_url=database_url or services.database_url,
        redis_url=redis_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env.update(FAST)
    started = [start_server(env, tmp_path) for _ in range(count)]
    try:
        yield started
    finally:
        for process in started:
            process.kill()


@asynccontextmanager
async def clients(*processes: ServerProcess) -> AsyncIterator[tuple[list[Api], list[Sockets]]]:
    """An HTTP client and socket clients for each process."""
    all_sockets = [Sockets(p.url) for p in processes]
    try:
        async with aiohttp.ClientSession() as session:
            yield [Api(p.url, session) for p in processes], all_sockets
    finally:
        for sockets in all_sockets:
            await sockets.close_all()


async def readiness(process: ServerProcess) -> tuple[int, dict[str, Any]]:
    """`GET /readyz`: status and body."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{process.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response,
    ):
        return response.status, await response.json()


async def becomes(process: ServerProcess, status: int, timeout: float = 15) -> dict[str, Any]:
    """Wait until `/readyz` answers `status`; returns its body."""

    async def check() -> dict[str, Any] | None:
        got, body = await readiness(process)
        return body if got == status else None

    body = await eventually(check, timeout=timeout, interval=0.1, what=f"readyz {status}")
    assert body is not None
    return body


async def open_dm(sockets: Sockets, a: User, b: User) -> str:
    """`a` opens the DM with `b`; returns its id."""
    socket = await sockets.connect("/chat", a)
    ack = await socket.call("conversation:open", {"participant_ids": [b.id]})
    assert ack["ok"], ack
    await socket.disconnect()
    return str(ack["data"]["id"])


async def send(socket: Socket, conversation_id: str, body: str, client_id: str = "") -> Any:
    """`message:send`; returns the ack."""
    payload = {
        "conversation_id": conversation_id,
        "client_id": client_id or uuid.uuid4().hex,
        "body": body,
    }
    return await socket.call("message:send", payload, timeout=10)


async def synced(socket: Socket, conversation_id: str, after_seq: int = 0) -> list[Any]:
    """What `messages:sync` returns after `after_seq`."""
    ack = await socket.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": after_seq}
    )
    assert ack["ok"], ack
    return list(ack["data"]["items"])


async def test_nodes_survive_a_redis_restart_and_resume_cross_node_delivery(
    services: RunServices, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    try:
        with nodes(services, tmp_path, 2, redis_url=redis.url) as (a, b):
            await a.wait_ready()
            await b.wait_ready()
            async with clients(a, b) as ([api_a, _], [sockets_a, sockets_b]):
                creator, fan = await api_a.register("creator"), await api_a.register()
                conversation_id = await open_dm(sockets_a, creator, fan)
                creator_socket = await sockets_a.connect("/chat", creator)
                fan_socket = await sockets_b.connect(
                    "/chat", fan, events=("message:new", "server:resync")
                )
                assert (await send(creator_socket, conversation_id, "before"))["ok"]
                await fan_socket.wait_for("message:new")

                redis.stop()
                for node in (a, b):
                    body = await becomes(node, 503)
                    assert body["redis"] == "down"
                # Postgres still takes messages: acked and stored, though B cannot hear of it.
                during = await send(creator_socket, conversation_id, "during")
                assert during["ok"], during

                await redis.start()
                for node in (a, b):
                    body = await becomes(node, 200)
                    assert (body["redis"], body["cluster"]) == ("ok", "ok")
                # B tells its sockets they may have missed something; the fan resyncs.
                await fan_socket.wait_for("server:resync", timeout=10)
                missed = await synced(fan_socket, conversation_id, after_seq=1)
                assert [m["body"] for m in missed] == ["during"]

                assert (await send(creator_socket, conversation_id, "after"))["ok"]
                arrived = await fan_socket.wait_for("message:new", 2)
                assert [m["body"] for m in arrived] == ["before", "after"]
    finally:
        redis.stop()


async def test_a_node_rides_out_a_postgres_outage_without_a_restart(
    services: RunServices, tmp_path: Path
) -> None:
    parsed = urlparse(services.database_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    via_proxy = urlunparse(parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}"))
    try:
        with nodes(services, tmp_path, 1, redis_url=None, database_url=via_proxy) as [node]:
            await node.wait_ready()
            async with clients(node) as ([api], [sockets]):
                creator, fan = await api.register("creator"), await api.register()
                conversation_id = await open_dm(sockets, creator, fan)
                creator_socket = await sockets.connect("/chat", creator)
                fan_socket = await sockets.connect("/chat", fan, events=("message:new",))

                await proxy.cut()
                body = await becomes(node, 503)
                assert body["database"] == "down"
                down = await send(creator_socket, conversation_id, "lost?", client_id="c-1")
                assert down["ok"] is False and down["error"]["code"] == "unavailable", down
                status, answer = await api.call(
                    "POST",
                    "/api/v1/auth/login",
                    json={"email": fan.email, "password": fan.password},
                )
                assert (status, answer["error"]["code"]) == (503, "unavailable")
                await fan_socket.assert_nothing("message:new")

                await proxy.restore()
                await becomes(node, 200)
                # The client retries with the same client_id: stored once, nothing half-written.
                up = await send(creator_socket, conversation_id, "lost?", client_id="c-1")
                assert up["ok"] and up["data"]["seq"] == 1, up
                assert [m["seq"] for m in await synced(fan_socket, conversation_id)] == [1]
                [delivered] = await fan_socket.wait_for("message:new")
                assert delivered["id"] == up["data"]["id"]
    finally:
        await proxy.close()


async def test_clients_of_a_killed_node_resync_on_the_other_without_loss_or_duplicates(
    services: RunServices, tmp_path: Path
) -> None:
    with nodes(services, tmp_path, 2, redis_url=services.redis_url) as (a, b):
        await a.wait_ready()
        await b.wait_ready()
        async with clients(a, b) as ([_, api_b], [sockets_a, sockets_b]):
            creator, fan = await api_b.register("creator"), await api_b.register()
            conversation_id = await open_dm(sockets_b, creator, fan)
            creator_socket = await sockets_b.connect("/chat", creator)
            fan_on_a = await sockets_a.connect("/chat", fan, events=("message:new",))
            assert (await send(creator_socket, conversation_id, "one"))["ok"]
            [first] = await fan_on_a.wait_for("message:new")

            a.kill()
            sent_meanwhile = [await send(creator_socket, conversation_id, "two")]
            sent_meanwhile.append(await send(creator_socket, conversation_id, "three"))
            assert all(ack["ok"] for ack in sent_meanwhile)

            # The load balancer sends the fan's reconnect to B; the client resyncs from the
            # last seq it saw, then gets live messages exactly once.
            fan_on_b = await sockets_b.connect("/chat", fan, events=("message:new",))
            missed = await synced(fan_on_b, conversation_id, after_seq=first["seq"])
            assert [m["body"] for m in missed] == ["two", "three"]
            assert (await send(creator_socket, conversation_id, "four"))["ok"]
            [live] = await fan_on_b.wait_for("message:new")
            assert live["body"] == "four"
            await fan_on_b.assert_nothing("message:new")
            everything = await synced(fan_on_b, conversation_id)
            assert [m["seq"] for m in everything] == [1, 2, 3, 4]


async def test_a_drained_node_tells_its_clients_who_reconnect_to_the_other(
    services: RunServices, tmp_path: Path
) -> None:
    with nodes(services, tmp_path, 2, redis_url=services.redis_url) as (a, b):
        await a.wait_ready()
        await b.wait_ready()
        async with clients(a, b) as ([_, api_b], [sockets_a, sockets_b]):
            creator, fan = await api_b.register("creator"), await api_b.register()
            conversation_id = await open_dm(sockets_b, creator, fan)
            creator_socket = await sockets_b.connect("/chat", creator)
            fan_on_a = await sockets_a.connect("/chat", fan, events=("message:new",))

            assert await a.terminate() == 0, a.log()
            [notice] = await fan_on_a.wait_for("server:shutdown")
            assert notice["reconnect"] is True
            assert (await send(creator_socket, conversation_id, "while you moved"))["ok"]

            fan_on_b = await sockets_b.connect("/chat", fan, events=("message:new",))
            missed = await synced(fan_on_b, conversation_id)
            assert [m["body"] for m in missed] == ["while you moved"]
            await fan_on_b.assert_nothing("message:new")
