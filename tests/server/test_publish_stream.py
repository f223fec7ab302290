"""The Redis stream intake: each entry handled once across the cluster, poison dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from backchannel.domain import api_keys
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME
from backchannel.server.publish_stream import GROUP, PublishStreamConsumer
from backchannel.server.redis_clients import is_cluster, open_redis
from backchannel.server.settings import Settings
from tests.services import RunServices
from tests.support import Api, Sockets


@pytest.fixture(params=["redis", pytest.param("redis-cluster", marks=pytest.mark.slow)])
def settings(settings: Settings, services: RunServices, request: pytest.FixtureRequest) -> Settings:
    """Clustered (on one Redis, then on a real Redis Cluster), with a short reclaim delay;
    the test server itself does not consume."""
    url = services.redis_url
    if request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster").url
    return settings.model_copy(
        update={
            "redis_url": url,
            "publish_stream_enabled": False,
            "publish_stream_claim_idle_seconds": 0.3,
        }
    )


@pytest.fixture
async def redis(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    assert settings.redis_url is not None
    client = open_redis(settings.redis_url)
    yield client  # type: ignore[misc]  # a RedisCluster answers the same stream commands
    if is_cluster(client):
        await request.getfixturevalue("redis_cluster").flush()
    await client.aclose()


@pytest.fixture
async def events_key(server: TestServer) -> str:
    """A live API key named `events` that stream entries act as."""
    await api_keys.create_key(server.app[RUNTIME].db, "events")
    return "events"


@asynccontextmanager
async def intake_node(settings: Settings) -> AsyncIterator[TestServer]:
    """Another node of the cluster, consuming the stream."""
    node = TestServer(
        create_app(settings.model_copy(update={"publish_stream_enabled": True})), host="127.0.0.1"
    )
    await node.start_server()
    try:
        yield node
    finally:
        await node.close()


def entry(user_ids: list[str], title: str, **extra: Any) -> dict[str, str]:
    payload = {
        "api_key_name": "events",
        "user_ids": user_ids,
        "notification": {"type": "event.reminder", "title": title},
        **extra,
    }
    return {"payload": json.dumps(payload)}


async def wait_until_settled(redis: Redis, stream: str, timeout: float = 5.0) -> None:
    """Until the group has delivered everything and nothing is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = await redis.xinfo_groups(stream)
        group = next(g for g in groups if g["name"].decode() == GROUP)
        if group["pending"] == 0 and group.get("lag", 1) == 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("stream entries still pending")


async def test_a_stream_entry_is_stored_and_delivered_like_publish(
    settings: Settings, api: Api, sockets: Sockets, redis: Redis, events_key: str
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    stream = f"{settings.redis_prefix}:publish"
    await redis.xadd(stream, entry([fan.id, "ghost"], "From the stream"))

    async with intake_node(settings):
        (live,) = await s.wait_for("notification")
        assert live["title"] == "From the stream"
        await wait_until_settled(redis, stream)
    page = (await s.call("notifications:sync", {}))["data"]
    assert [i["title"] for i in page["items"]] == ["From the stream"]


async def test_poison_entries_go_to_the_dead_letter_stream_and_the_rest_flows(
    settings: Settings, api: Api, sockets: Sockets, redis: Redis, events_key: str
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    stream = f"{settings.redis_prefix}:publish"
    await redis.xadd(stream, {"payload": "{not json"})
    await redis.xadd(stream, {"something": "else"})
    await redis.xadd(stream, {"payload": json.dumps({"user_ids": [fan.id]})})  # no key name
    await redis.xadd(
        stream,
        {
            "payload": json.dumps(
                {**json.loads(entry([fan.id], "x")["payload"]), "api_key_name": "revoked-or-never"}
            )
        },
    )
    await redis.xadd(
        stream, {"payload": json.dumps({"api_key_name": "events", "user_ids": [fan.id]})}
    )
    await redis.xadd(stream, entry([fan.id], "Still delivered"))

    async with intake_node(settings) as node:
        (live,) = await s.wait_for("notification")
        assert live["title"] == "Still delivered"
        await wait_until_settled(redis, stream)
        exported = node.app[RUNTIME].metrics.render().decode()
    assert 'backchannel_publish_stream_entries_total{outcome="dead"} 5.0' in exported
    assert 'backchannel_publish_stream_entries_total{outcome="published"} 1.0' in exported

    dead = await redis.xrange(f"{settings.redis_prefix}:publish:dead")
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 5
    assert "not valid JSON" in reasons[0]
    assert "no `payload`" in reasons[1]
    assert "api_key_name" in reasons[2]
    assert "unknown or revoked" in reasons[3]
    assert "notification" in reasons[4]
    assert all(fields[b"entry_id"] for _, fields in dead)
    await s.assert_nothing("notification")


async def test_entries_of_a_consumer_killed_mid_batch_are_reclaimed_and_delivered_once(
    server: TestServer,
    settings: Settings,
    api: Api,
    sockets: Sockets,
    redis: Redis,
    events_key: str,
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    stream = f"{settings.redis_prefix}:publish"

    doomed = PublishStreamConsumer(rt, redis, "doomed-node")
    await doomed.ensure_group()
    for title in ("first", "second", "third"):
        await redis.xadd(stream, entry([fan.id], title))
    batch = await doomed.read_new(block=False)
    assert len(batch) == 3
    # It commits the first entry (delivering it live), then dies before acknowledging anything.
    entry_id, fields = batch[0]
    assert fields is not None
    await doomed.apply(entry_id, fields)
    await s.wait_for("notification")
    assert len((await redis.xpending(stream, GROUP))["consumers"]) == 1

    async with intake_node(settings):
        await wait_until_settled(redis, stream)
        received = await s.wait_for("notification", 3)
        await s.assert_nothing("notification", within=0.5)

    assert sorted(n["title"] for n in received) == ["first", "second", "third"]
    page = (await s.call("notifications:sync", {}))["data"]
    assert sorted(i["title"] for i in page["items"]) == ["first", "second", "third"]


async def test_an_entry_that_keeps_failing_is_dead_lettered_not_retried_forever(
    server: TestServer, settings: Settings, api: Api, redis: Redis, events_key: str
) -> None:
    rt = server.app[RUNTIME]
    rt.settings = settings.model_copy(update={"publish_stream_max_deliveries": 1})
    fan = await api.register()
    stream = f"{settings.redis_prefix}:publish"
    first = PublishStreamConsumer(rt, redis, "first-node")
    await first.ensure_group()
    await redis.xadd(stream, entry([fan.id], "unlucky"))
    assert len(await first.read_new(block=False)) == 1  # delivered once, then the node dies

    second = PublishStreamConsumer(rt, redis, "second-node")
    deadline = time.monotonic() + 5
    while (await redis.xpending(stream, GROUP))["pending"] and time.monotonic() < deadline:
        await second.step()
    dead = await redis.xrange(f"{settings.redis_prefix}:publish:dead")
    assert [f[b"reason"] for _, f in dead] == [b"gave up after 1 failed deliveries"]


async def test_in_trusted_mode_an_entry_needs_no_api_key_name(
    settings: Settings, api: Api, sockets: Sockets, redis: Redis
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    stream = f"{settings.redis_prefix}:publish"
    payload = {"user_ids": [fan.id], "notification": {"type": "x", "title": "Trusted"}}
    await redis.xadd(stream, {"payload": json.dumps(payload)})

    async with intake_node(settings.model_copy(update={"publish_stream_trusted": True})):
        (live,) = await s.wait_for("notification")
        assert live["title"] == "Trusted"
        await wait_until_settled(redis, stream)
    assert await redis.xlen(f"{settings.redis_prefix}:publish:dead") == 0
