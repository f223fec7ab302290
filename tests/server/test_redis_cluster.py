"""On a real 3-primary Redis Cluster: limits are shared, not per node, and routed traffic is
spread over every shard and still reaches its sockets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from backchannel.errors import RateLimited
from backchannel.rooms.names import Namespace, user_room
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import SIO
from backchannel.server.ratelimit import Rate, RateLimiter
from backchannel.server.redis_clients import node_url, open_redis
from backchannel.server.settings import Settings
from tests.nodes import node
from tests.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(node_url(redis_cluster.url))
    yield client
    await client.aclose()
    await redis_cluster.flush()


async def test_a_rate_limit_is_shared_by_every_node_on_a_redis_cluster(
    cluster_client: RedisCluster, redis_cluster: LocalRedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    other = open_redis(redis_cluster.url)
    # A generous timeout: on a loaded machine a slow answer would fall back to node memory.
    node_a = RateLimiter(cluster_client, "bc", timeout=10)
    node_b = RateLimiter(other, "bc", timeout=10)
    rate = Rate.parse("4/60s:4")
    try:
        with caplog.at_level(logging.WARNING, "backchannel.server.ratelimit"):
            for limiter in (node_a, node_b, node_a, node_b):
                await limiter.hit("user:1", rate)
            with pytest.raises(RateLimited):
                await node_b.hit("user:1", rate)
            # Two buckets in different slots: checked together, taken together.
            ip, user = ("ip:10.0.0.1", rate), ("user:2", rate)
            assert cluster_client.keyslot(node_a.key(ip[0])) != cluster_client.keyslot(
                node_a.key(user[0])
            )
            for _ in range(4):
                await node_a.hit_all([ip, user])
            with pytest.raises(RateLimited):
                await node_b.hit_all([user, ip])
        # The script ran on the cluster: no CROSSSLOT fallback to each node's memory.
        assert "fall back" not in caplog.text
        assert await cluster_client.exists(node_a.key("user:1")) == 1
    finally:
        await other.aclose()


async def test_routed_channels_spread_over_every_primary_and_each_reaches_its_socket(
    settings: Settings, redis_cluster: LocalRedisCluster, cluster_client: RedisCluster
) -> None:
    clustered = settings.model_copy(
        update={"redis_url": redis_cluster.url, "cluster_routing": "routed"}
    )
    async with node(clustered) as a, node(clustered) as b:
        manager = b.server.app[SIO].manager
        assert isinstance(manager, ClusterManager) and manager.routes is not None
        assert manager.sharded is True
        await cluster_client.initialize()
        owners: dict[str, str] = {}
        sockets = {}
        while len(set(owners.values())) < len(redis_cluster.ports) and len(owners) < 30:
            fan = await b.api.register()
            channel = manager.routes.room(user_room(fan.id))
            assert channel is not None
            owners[fan.id] = cluster_client.get_node_from_key(channel).name
            sockets[fan.id] = await b.sockets.connect("/chat", fan, events=("dm",))
        assert len(set(owners.values())) == len(redis_cluster.ports)

        for fan_id in sockets:
            await a.emitter.to_user(Namespace.CHAT, fan_id, "dm", {"to": fan_id})

        for fan_id, socket in sockets.items():
            assert await socket.wait_for("dm") == [{"to": fan_id}]
