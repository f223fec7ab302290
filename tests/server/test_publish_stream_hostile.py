"""Publish-stream entries pass the same parsing layer as HTTP: hostile ones are dead-lettered."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.server.test_publish_stream import (
    entry,
    events_key,
    intake_node,
    redis,
    settings,
    wait_until_settled,
)
from tests.support import Api, Sockets

__all__ = ["events_key", "redis", "settings"]


async def test_deep_nul_and_wide_integer_entries_are_dead_lettered_and_the_rest_flows(
    settings: Settings, api: Api, sockets: Sockets, redis: Redis, events_key: str
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    stream = f"{settings.redis_prefix}:publish"
    good = json.loads(entry([fan.id], "x")["payload"])
    hostile = [
        '{"api_key_name": "events", "user_ids": ' + "[" * 5000 + "]" * 5000 + "}",
        json.dumps({**good, "api_key_name": "ev\u0000ents"}),
        json.dumps({**good, "user_ids": ["a\u0000"]}),
        json.dumps({**good, "notification": {"type": "t", "title": "\u0000"}}),
        json.dumps({**good, "notification": {"type": "t", "title": "t", "data": {"n": 2**64}}}),
    ]
    for payload in hostile:
        await redis.xadd(stream, {"payload": payload})
    await redis.xadd(stream, entry([fan.id], "Still delivered"))

    async with intake_node(settings) as node:
        (live,) = await s.wait_for("notification")
        assert live["title"] == "Still delivered"
        await wait_until_settled(redis, stream)
        exported = node.app[RUNTIME].metrics.render().decode()
    dead_total = f'backchannel_publish_stream_entries_total{{outcome="dead"}} {len(hostile)}.0'
    assert dead_total in exported
    dead = await redis.xrange(f"{settings.redis_prefix}:publish:dead")
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert "nested deeper" in reasons[0]
    assert all("NUL" in reason for reason in reasons[1:4]), reasons
    assert "64-bit" in reasons[4]
