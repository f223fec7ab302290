"""Rate limits allow a burst, then the sustained rate, in memory and in Redis alike."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from backchannel.errors import RateLimited
from backchannel.server.ratelimit import Rate, RateLimiter
from tests.services import RunServices


def test_rate_specs_parse() -> None:
    assert Rate.parse("20/10s:10") == Rate(20, 10.0, 10)
    assert Rate.parse("5/900s") == Rate(5, 900.0, 5)
    with pytest.raises(ValueError):
        Rate.parse("fast")


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_burst_passes_then_the_next_waits(backend: str, services: RunServices) -> None:
    redis = Redis.from_url(services.redis_url) if backend == "redis" else None
    limiter = RateLimiter(redis, services.redis_prefix)
    rate = Rate.parse("20/10s:10")
    try:
        for _ in range(10):
            await limiter.hit("user:1", rate)
        with pytest.raises(RateLimited) as caught:
            await limiter.hit("user:1", rate)
        assert 0 < caught.value.retry_after_ms <= 500
        await limiter.hit("user:2", rate)  # buckets are independent
    finally:
        if redis is not None:
            await redis.aclose()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_several_buckets_are_taken_together_or_not_at_all(
    backend: str, services: RunServices
) -> None:
    redis = Redis.from_url(services.redis_url) if backend == "redis" else None
    limiter = RateLimiter(redis, services.redis_prefix)
    tight, loose = Rate.parse("1/60s"), Rate.parse("10/60s")
    try:
        await limiter.hit_all([("ip:a", tight), ("user:a", loose)])
        with pytest.raises(RateLimited):
            await limiter.hit_all([("ip:a", tight), ("user:b", loose)])
        # user:b lost nothing to the refused request; only its one success counts.
        for _ in range(10):
            await limiter.hit("user:b", loose)
        await limiter.check_all([("ip:b", tight)])  # checking takes nothing
        await limiter.hit("ip:b", tight)
        await limiter.reset("ip:a")
        await limiter.hit("ip:a", tight)
    finally:
        if redis is not None:
            await redis.aclose()


async def test_a_redis_outage_falls_back_to_this_nodes_memory(services: RunServices) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    limiter = RateLimiter(dead, services.redis_prefix)
    rate = Rate.parse("1/60s")
    try:
        await limiter.hit("ip:a", rate)
        with pytest.raises(RateLimited):
            await limiter.hit("ip:a", rate)
    finally:
        await dead.aclose()
