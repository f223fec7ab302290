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
