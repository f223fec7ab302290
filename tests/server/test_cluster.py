"""Two nodes on one Redis behave as one server: emits and room moves reach every node."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestServer

from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.nodes import eventually, node
from tests.outages import RedisServer, TcpProxy
from tests.support import Api, Sockets


async def test_an_emit_on_one_node_reaches_a_socket_on_the_other(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        fan = await b.api.register()
        socket = await b.sockets.connect("/chat", fan, events=("hello",))

        await a.emitter.to_user(Namespace.CHAT, fan.id, "hello", {"from": "node a"})

        assert await socket.wait_for("hello") == [{"from": "node a"}]
        await socket.assert_nothing("hello")  # once, not once per node


async def test_a_user_joins_a_room_on_the_node_that_holds_their_sockets(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        creator, fan, other = (
            await b.api.register("creator"),
            await b.api.register(),
            await b.api.register(),
        )
        fan_socket = await b.sockets.connect("/chat", fan, events=("post",))
        other_socket = await b.sockets.connect("/chat", other, events=("post",))
        room = subscribers_room(creator.id)

        # Node A grants the membership, then emits at once: B applies both, in order.
        await a.emitter.join_user_to_room(Namespace.CHAT, fan.id, room)
        await a.emitter.to_room(Namespace.CHAT, room, "post", {"n": 1})
        assert await fan_socket.wait_for("post") == [{"n": 1}]

        await a.emitter.remove_user_from_room(None, fan.id, room)
        await a.emitter.to_room(Namespace.CHAT, room, "post", {"n": 2})
        await a.emitter.to_user(Namespace.CHAT, fan.id, "post", {"n": 3})
        assert await fan_socket.wait_for("post", 2) == [{"n": 1}, {"n": 3}]
        await other_socket.assert_nothing("post")


async def test_a_single_node_moves_a_users_sockets_in_memory(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register("creator"), await api.register()
    chat = await sockets.connect("/chat", fan, events=("post",))
    notifications = await sockets.connect("/notifications", fan, events=("post",))
    room = subscribers_room(creator.id)
    emitter = server.app[RUNTIME].emitter

    await emitter.join_user_to_room(Namespace.CHAT, fan.id, room)
    await emitter.to_room(Namespace.CHAT, room, "post", {"n": 1})
    await emitter.to_room(Namespace.NOTIFICATIONS, room, "post", {"n": 1})

    assert await chat.wait_for("post") == [{"n": 1}]
    await notifications.assert_nothing("post")  # only the namespace asked for


async def test_readiness_reports_the_cluster_link(cluster_settings: Settings) -> None:
    async with node(cluster_settings) as a:
        status, body = await a.api.call("GET", "/readyz")
        assert (status, body["redis"], body["cluster"]) == (200, "ok", "ok")
        async with a.api.session.get(f"{a.url}/metrics") as response:
            assert "backchannel_cluster_linked 1.0" in await response.text()


async def test_after_a_redis_restart_nodes_relink_and_tell_sockets_to_resync(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    fast = cluster_settings.model_copy(
        update={
            "redis_url": redis.url,
            "redis_ping_interval_seconds": 0.3,
            "redis_retry_max_seconds": 0.3,
            "redis_timeout_seconds": 1.0,
        }
    )
    try:
        async with node(fast) as a, node(fast) as b:
            fan = await a.api.register()
            socket = await b.sockets.connect("/chat", fan, events=("hello", "server:resync"))

            redis.stop()
            await eventually(lambda: not a.linked() and not b.linked(), what="link lost")
            status, body = await a.api.call("GET", "/readyz")
            assert (status, body["redis"], body["cluster"]) == (503, "down", "down")
            await a.emitter.to_user(Namespace.CHAT, fan.id, "hello", {"n": "lost"})

            await redis.start()
            await eventually(lambda: a.linked() and b.linked(), what="link restored")

            async def ready() -> bool:
                return (await a.api.call("GET", "/readyz"))[0] == 200

            # The first command on a pooled connection from before the restart may still fail.
            await eventually(ready, what="ready again")
            await eventually(
                lambda: {"reason": "cluster link restored"} in socket.received["server:resync"],
                what="server:resync after the relink",
            )
            # Maybe also `cluster publish failed` from a, whose emit above reached no other
            # node (b hears it only if its own link was back by then).
            reasons = {r["reason"] for r in socket.received["server:resync"]}
            assert reasons <= {"cluster link restored", "cluster publish failed"}
            await a.emitter.to_user(Namespace.CHAT, fan.id, "hello", {"n": "after"})
            assert await socket.wait_for("hello") == [{"n": "after"}]
    finally:
        redis.stop()


async def test_a_silent_redis_is_noticed_and_the_link_recovers_when_it_speaks_again(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    proxy = TcpProxy("127.0.0.1", redis.port)
    await proxy.start()
    fast = cluster_settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
            "redis_ping_interval_seconds": 0.2,
            "redis_retry_max_seconds": 0.2,
            "redis_timeout_seconds": 0.5,
        }
    )
    try:
        async with node(fast) as a:
            proxy.freeze()  # no error, no FIN: only silence
            await eventually(lambda: not a.linked(), timeout=3, what="silence noticed")
            assert (await a.api.call("GET", "/readyz"))[0] == 503
            proxy.thaw()
            await eventually(a.linked, timeout=3, what="link restored")
    finally:
        await proxy.close()
        redis.stop()
