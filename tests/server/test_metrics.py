"""`/metrics` as an operator scrapes it: process, pool, Redis link, outbox, stream, sockets."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from backchannel.persistence import outbox
from backchannel.server.keys import RUNTIME
from backchannel.server.publish_stream import GROUP, dead_key, stream_key
from backchannel.server.redis_clients import open_redis
from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.nodes import eventually
from tests.outages import TcpProxy
from tests.services import RunServices
from tests.support import Api


async def scrape(api: Api, token: str | None = None) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of `/metrics`, by (name, labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with api.session.get(f"{api.base_url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    """One sample's value."""
    return samples[(name, frozenset(labels.items()))]


async def test_process_gc_and_per_namespace_connections(settings: Settings) -> None:
    async with node(settings) as server:
        samples = await scrape(server.api)
        assert value(samples, "process_cpu_seconds_total") > 0
        assert value(samples, "process_resident_memory_bytes") > 0
        assert value(samples, "process_open_fds") > 0
        assert value(samples, "python_gc_collections_total", generation="0") >= 0
        assert any(name == "python_info" for name, _ in samples)
        for namespace in ("/chat", "/presence", "/notifications", "/ppv", "/typing"):
            assert value(samples, "backchannel_socket_connections", namespace=namespace) == 0

        fan = await server.api.register()
        await server.sockets.connect("/chat", fan)
        await server.sockets.connect("/chat", fan)
        await server.sockets.connect("/notifications", fan)
        samples = await scrape(server.api)
        assert value(samples, "backchannel_socket_connections", namespace="/chat") == 2
        assert value(samples, "backchannel_socket_connections", namespace="/notifications") == 1
        # Without REDIS_URL there is no Redis to report on.
        assert ("backchannel_redis_up", frozenset()) not in samples


@pytest.mark.timeout(60)
async def test_the_pool_in_use_and_waiting_and_a_scrape_that_cannot_hang(
    settings: Settings,
) -> None:
    # A long acquire timeout: the third holder must still be waiting when the scrape looks.
    async with node(
        settings, db_pool_min_size=1, db_pool_max_size=2, db_acquire_timeout_seconds=30
    ) as server:
        db = server.server.app[RUNTIME].db
        samples = await scrape(server.api)
        assert value(samples, "backchannel_db_pool_max_size") == 2
        assert 1 <= value(samples, "backchannel_db_pool_size") <= 2

        release = asyncio.Event()

        async def hold() -> None:
            async with db.connection():
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(3)]  # two in use, one waiting
        try:

            async def busy() -> dict[tuple[str, frozenset[Any]], float]:
                samples = await scrape(server.api)
                full = value(samples, "backchannel_db_pool_in_use") == 2
                return (
                    samples if full and value(samples, "backchannel_db_pool_waiting") >= 1 else {}
                )

            samples = await eventually(busy, timeout=15, what="a full pool with a waiter")
            assert value(samples, "backchannel_db_pool_size") == 2
            # The outbox sample found no connection within its timeout; the scrape still answered.
            assert value(samples, "backchannel_metrics_sample_failures_total", source="outbox") >= 1
        finally:
            release.set()
            await asyncio.gather(*holders)

        async def idle() -> bool:
            samples = await scrape(server.api)
            return value(samples, "backchannel_db_pool_waiting") == 0

        await eventually(idle, what="the waiter served")


async def test_the_outbox_backlog_and_its_oldest_age(
    settings: Settings, services: RunServices
) -> None:
    fan_id: str
    async with node(settings, outbox_poll_seconds=3600) as server:
        fan = await server.api.register()
        fan_id = fan.id
        assert value(await scrape(server.api), "backchannel_outbox_backlog") == 0
        conn = await asyncpg.connect(services.database_url)
        try:
            # What a node that died between commit and emit leaves behind, a minute ago.
            row_id = await outbox.add(conn, "emit_user", ["/ppv"], fan_id, "wallet:balance", {})
            await conn.execute(
                "update outbox set created_at = now() - $2::interval where id = $1",
                row_id,
                timedelta(seconds=60),
            )
        finally:
            await conn.close()
        samples = await scrape(server.api)
        assert value(samples, "backchannel_outbox_backlog") == 1
        assert 60 <= value(samples, "backchannel_outbox_oldest_age_seconds") < 120

    async with node(settings, outbox_poll_seconds=0.1) as server:

        async def drained() -> bool:
            return value(await scrape(server.api), "backchannel_outbox_backlog") == 0

        await eventually(drained, what="the outbox publisher delivering the row")
        assert value(await scrape(server.api), "backchannel_outbox_oldest_age_seconds") == 0


async def test_publish_stream_lag_pending_and_dead_letters(
    cluster_settings: Settings, services: RunServices
) -> None:
    # The stream lives where the node's Redis is: the shared one, or the Redis Cluster.
    redis = open_redis(cluster_settings.redis_url or services.redis_url)
    prefix = cluster_settings.redis_prefix
    try:
        async with node(cluster_settings, publish_stream_enabled=False) as server:
            await redis.xgroup_create(stream_key(prefix), GROUP, id="0", mkstream=True)
            for n in range(3):
                await redis.xadd(stream_key(prefix), {"payload": f"not json {n}"})
            samples = await scrape(server.api)
            assert value(samples, "backchannel_redis_up") == 1
            assert value(samples, "backchannel_publish_stream_lag") == 3
            assert value(samples, "backchannel_publish_stream_dead_letters") == 0

        async with node(cluster_settings, publish_stream_trusted=True) as server:

            async def all_dead() -> bool:
                samples = await scrape(server.api)
                return value(samples, "backchannel_publish_stream_dead_letters") == 3

            await eventually(all_dead, timeout=10, what="three entries dead-lettered")
            samples = await scrape(server.api)
            assert value(samples, "backchannel_publish_stream_lag") == 0
            assert value(samples, "backchannel_publish_stream_pending") == 0
            assert await redis.xlen(dead_key(prefix)) == 3
    finally:
        await redis.aclose()


@pytest.mark.timeout(60)
async def test_the_redis_link_going_down_and_coming_back(
    cluster_settings: Settings, services: RunServices
) -> None:
    redis_url = services.redis_url
    host_port, _, database = redis_url.removeprefix("redis://").partition("/")
    host, _, port = host_port.partition(":")
    proxy = TcpProxy(host, int(port or 6379))
    await proxy.start()
    fast = {
        "redis_url": f"redis://127.0.0.1:{proxy.port}/{database or '0'}",
        "redis_ping_interval_seconds": 0.2,
        "redis_retry_max_seconds": 0.3,
        "redis_timeout_seconds": 0.5,
    }
    try:
        async with node(cluster_settings, **fast) as server:

            async def state(up: float) -> bool:
                samples = await scrape(server.api)
                return (
                    value(samples, "backchannel_redis_up") == up
                    and value(samples, "backchannel_cluster_linked") == up
                )

            await eventually(lambda: state(1), what="linked")
            before = await scrape(server.api)
            assert value(before, "backchannel_cluster_reconnects_total") == 0

            await proxy.cut()
            await eventually(lambda: state(0), timeout=10, what="the link seen down")
            await proxy.restore()
            await eventually(lambda: state(1), timeout=15, what="the link back")

            after = await scrape(server.api)
            assert value(after, "backchannel_cluster_link_losses_total") == 1
            assert value(after, "backchannel_cluster_reconnects_total") == 1
            assert value(after, "backchannel_metrics_sample_failures_total", source="redis") >= 1
    finally:
        await proxy.close()


async def test_a_metrics_token_keeps_metrics_from_anyone_without_it(settings: Settings) -> None:
    token = "scrape-" + "k" * 30
    async with node(settings, metrics_token=SecretStr(token)) as server:
        api = server.api
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            async with api.session.get(f"{api.base_url}/metrics", headers=headers) as response:
                body = await response.json()
                assert response.status == 401, headers
            assert body["error"]["code"] == "unauthorized"
        samples = await scrape(api, token)
        assert value(samples, "backchannel_db_pool_max_size") == settings.db_pool_max_size


def test_an_empty_metrics_token_means_none() -> None:
    assert Settings(metrics_token="").metrics_token is None
    assert Settings().metrics_token is None
