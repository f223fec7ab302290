"""Token-bucket rate limits (GCRA): in Redis across the cluster, in memory on a single node.

Why not the `limits` library: its strategies are fixed, moving and sliding windows, so
"20 per 10 s with a burst of 10" would need two limits and two Redis round trips per check.
GCRA expresses rate plus burst in one stored timestamp and one Lua call.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backchannel.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*(?::\s*(\d+))?\s*$")

# KEYS[1] = bucket; ARGV = emission interval (ms), burst. Returns 0 or the wait in ms.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return 0
"""


@dataclass(frozen=True)
class Rate:
    """`count` per `period_seconds`, allowing `burst` at once."""

    count: int
    period_seconds: float
    burst: int

    @classmethod
    def parse(cls, spec: str) -> Rate:
        """`"20/10s:10"`: 20 per 10 seconds with a burst of 10 (burst defaults to count)."""
        match = _SPEC.match(spec)
        if not match or int(match[1]) < 1 or float(match[2]) <= 0:
            raise ValueError(f"rate limit {spec!r} is not of the form COUNT/SECONDSs[:BURST]")
        count = int(match[1])
        return cls(count, float(match[2]), int(match[3]) if match[3] else count)

    @property
    def interval_ms(self) -> float:
        """Time one request's worth of budget takes to come back."""
        return self.period_seconds * 1000 / self.count


class RateLimiter:
    """Checks and consumes one unit of a bucket; raises `RateLimited` when it is empty."""

    def __init__(self, redis: Redis | None, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:rl:"
        self._local: dict[str, float] = {}
        self._script = redis.register_script(_GCRA_LUA) if redis is not None else None

    async def hit(self, bucket: str, rate: Rate) -> None:
        """Consume one unit of `bucket` or raise `RateLimited` with the wait."""
        wait_ms = await self.wait_ms(bucket, rate)
        if wait_ms > 0:
            raise RateLimited(wait_ms)

    async def wait_ms(self, bucket: str, rate: Rate) -> int:
        """0 and consumed, or how long to wait (nothing consumed)."""
        if self._script is not None:
            result = await self._script(
                keys=[self._prefix + bucket], args=[rate.interval_ms, rate.burst]
            )
            return int(float(result))
        return self._local_hit(bucket, rate)

    def _local_hit(self, bucket: str, rate: Rate) -> int:
        now = time.monotonic() * 1000
        interval = rate.interval_ms
        tat = max(self._local.get(bucket, now), now)
        allow_at = tat + interval - interval * rate.burst
        if now < allow_at:
            return int(allow_at - now) + 1
        self._local[bucket] = tat + interval
        if len(self._local) > 100_000:
            self._forget_idle(now)
        return 0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, tat in self._local.items() if tat <= now]:
            del self._local[key]
