"""Routed cluster traffic: a node hears only the rooms its sockets are in, and nothing is lost."""

from __future__ import annotations

import pytest

from backchannel.rooms.names import Namespace, subscribers_room, user_room
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import SIO
from backchannel.server.settings import Settings
from tests.nodes import Node, eventually, node
from tests.services import RunServices


def _manager(n: Node) -> ClusterManager:
    manager = n.server.app[SIO].manager
    assert isinstance(manager, ClusterManager)
    return manager


@pytest.fixture
def redis_settings(settings: Settings, services: RunServices) -> Settings:
    """Settings with Redis on; each test picks its routing."""
    return settings.model_copy(update={"redis_url": services.redis_url})


def _routed(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"cluster_routing": "routed", **update})


@pytest.mark.slow
@pytest.mark.parametrize("routing", ["routed", "single"])
async def test_a_node_hears_messages_only_for_users_it_holds_when_routed(
    redis_settings: Settings, routing: str
) -> None:
    settings = redis_settings.model_copy(update={"cluster_routing": routing})
    async with node(settings) as a, node(settings) as b, node(settings) as c:
        alice, carol, bob = await a.api.register(), await c.api.register(), await b.api.register()
        await a.sockets.connect("/chat", alice, events=("dm",))
        carol_socket = await c.sockets.connect("/chat", carol, events=("dm",))
        await b.sockets.connect("/chat", bob, events=("dm",))
        # Connect-time traffic (presence, counts) has settled once one more emit arrived.
        await a.emitter.to_user(Namespace.CHAT, carol.id, "dm", {"n": 0})
        await carol_socket.wait_for("dm")
        heard_before = _manager(b).received

        for n in range(1, 21):
            await a.emitter.to_user(Namespace.CHAT, carol.id, "dm", {"n": n})
        received = await carol_socket.wait_for("dm", 21)

        assert [event["n"] for event in received] == list(range(21))
        foreign = _manager(b).received - heard_before
        if routing == "routed":
            assert foreign == 0
        else:
            assert foreign >= 20  # every node decodes every emit


@pytest.mark.slow
async def test_a_socket_in_two_rooms_of_one_emit_gets_it_once_across_nodes(
    redis_settings: Settings,
) -> None:
    settings = _routed(redis_settings)
    async with node(settings) as a, node(settings) as b:
        creator, fan = await a.api.register("creator"), await b.api.register()
        socket = await b.sockets.connect("/chat", fan, events=("post",))
        room = subscribers_room(creator.id)
        await a.emitter.join_user_to_room(Namespace.CHAT, fan.id, room)

        await a.server.app[SIO].emit(
            "post", {"n": 1}, room=[user_room(fan.id), room], namespace=Namespace.CHAT
        )

        assert await socket.wait_for("post") == [{"n": 1}]
        await socket.assert_nothing("post")


@pytest.mark.slow
async def test_a_node_stops_hearing_a_room_once_its_last_socket_has_left(
    redis_settings: Settings,
) -> None:
    settings = _routed(redis_settings, redis_ping_interval_seconds=0.3)
    async with node(settings) as a, node(settings) as b:
        fan = await b.api.register()
        socket = await b.sockets.connect("/chat", fan, events=("hello",))
        routes = _manager(b).routes
        subscriptions = _manager(b).subscriptions
        assert routes is not None and subscriptions is not None
        channel = routes.room(user_room(fan.id))
        assert channel in subscriptions.confirmed

        await socket.disconnect()
        await eventually(lambda: channel not in subscriptions.confirmed, what="unsubscribed")
        heard_before = _manager(b).received
        await a.emitter.to_user(Namespace.CHAT, fan.id, "hello", {"n": 1})

        again = await b.sockets.connect("/chat", fan, events=("hello",))
        await a.emitter.to_user(Namespace.CHAT, fan.id, "hello", {"n": 2})
        assert await again.wait_for("hello") == [{"n": 2}]
        assert _manager(b).received - heard_before == 1


@pytest.mark.slow
@pytest.mark.parametrize("pubsub", ["plain", "sharded"])
async def test_room_moves_reach_the_other_node_before_later_emits_on_either_pubsub(
    redis_settings: Settings, pubsub: str
) -> None:
    settings = _routed(redis_settings, cluster_pubsub=pubsub)
    async with node(settings) as a, node(settings) as b:
        assert _manager(a).sharded is (pubsub == "sharded")
        creator = await a.api.register("creator")
        fans = [await b.api.register() for _ in range(3)]
        sockets = [await b.sockets.connect("/chat", fan, events=("post",)) for fan in fans]
        room = subscribers_room(creator.id)

        for n in range(5):
            await a.emitter.join_users_to_room(Namespace.CHAT, [f.id for f in fans], room)
            await a.emitter.to_room(Namespace.CHAT, room, "post", {"n": n})
            await a.emitter.remove_users_from_room(None, [f.id for f in fans], room)
            await a.emitter.to_room(Namespace.CHAT, room, "post", {"n": "after leaving"})

        for socket in sockets:
            assert await socket.wait_for("post", 5) == [{"n": n} for n in range(5)]
            await socket.assert_nothing("post")


async def test_auto_pubsub_picks_sharded_on_redis_7(redis_settings: Settings) -> None:
    async with node(_routed(redis_settings)) as a:
        version = await a.server.app[SIO].manager._publisher_client().info("server")
        major = int(str(version["redis_version"]).split(".")[0])
        assert _manager(a).sharded is (major >= 7)
