"""Per-namespace socket counts in a real Redis: what Redis forgot or never got is sent again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backchannel.rooms.socket_counts import SocketCounts
from tests.outages import TcpProxy
from tests.services import RunServices


@pytest.fixture
async def redis(services: RunServices) -> AsyncIterator[Redis]:
    client = Redis.from_url(services.redis_url)
    yield client
    await client.aclose()


async def test_counts_redis_forgot_are_sent_again(services: RunServices, redis: Redis) -> None:
    counts = SocketCounts(redis, services.redis_prefix, f"node-{uuid.uuid4().hex[:6]}")
    await counts.opened("/chat", "u1")
    await counts.opened("/chat", "u2")
    await counts.opened("/chat", "u2")
    assert await counts.with_open("/chat", ["u1", "u2", "u3"]) == {"u1", "u2"}

    # Redis restarts empty: nothing is counted until the node is told it was forgotten.
    keys = [key async for key in redis.scan_iter(match=f"{services.redis_prefix}:sockets:*")]
    await redis.delete(*keys)
    assert await counts.with_open("/chat", ["u1", "u2"]) == set()
    await counts.resend()
    assert await counts.with_open("/chat", ["u1", "u2"]) == set()
    counts.forgotten()
    await counts.resend()
    assert await counts.with_open("/chat", ["u1", "u2"]) == {"u1", "u2"}
    await counts.closed("/chat", "u2")
    assert await counts.with_open("/chat", ["u2"]) == {"u2"}  # one of two sockets left


async def test_a_count_whose_write_failed_is_sent_on_the_next_resend(
    services: RunServices, redis: Redis
) -> None:
    proxy = TcpProxy("127.0.0.1", redis.connection_pool.connection_kwargs["port"])
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    through = Redis.from_url(f"redis://127.0.0.1:{proxy.port}/{db}", socket_connect_timeout=0.5)
    counts = SocketCounts(through, services.redis_prefix, f"node-{uuid.uuid4().hex[:6]}")
    try:
        await proxy.cut()
        with pytest.raises(RedisError):
            await counts.opened("/chat", "u1")
        await proxy.restore()
        assert await counts.with_open("/chat", ["u1"]) == set()
        await counts.resend()
        assert await counts.with_open("/chat", ["u1"]) == {"u1"}
        await counts.resend()  # nothing left to send: a no-op
        assert await counts.with_open("/chat", ["u1"]) == {"u1"}
    finally:
        await through.aclose()
        await proxy.close()
