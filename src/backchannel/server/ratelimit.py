"""Token-bucket rate limits (GCRA): in Redis across the cluster, in memory on a single node.

Why not the `limits` library: its strategies are fixed, moving and sliding windows, so
"20 per 10 s with a burst of 10" would need two limits and two Redis round trips per check.
GCRA expresses rate plus burst in one stored timestamp and one Lua call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backchannel.errors import RateLimited
from backchannel.server.redis_clients import is_cluster

if TYPE_CHECKING:
    from backchannel.server.redis_clients import RedisClient

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*(?::\s*(\d+))?\s*$")

# KEYS = buckets; ARGV = consume (1 or 0), then interval (ms) and burst for each bucket.
# Returns 0 (and, when consuming, takes one unit from every bucket) or the longest wait in ms
# (nothing taken): several limits on one request cost one round trip and never half-apply.
_GCRA_LUA = """
local consume = ARGV[1] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local allow_at = tat + interval - interval * burst
  if allow_at - now > wait then wait = allow_at - now end
  tats[i] = tat + interval
end
if wait > 0 then return math.ceil(wait) end
if consume then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, tats[i], 'PX', math.max(1, math.ceil(tats[i] - now)))
  end
end
return 0
"""


_PARSED: dict[str, Rate] = {}


@dataclass(frozen=True)
class Rate:
    """`count` per `period_seconds`, allowing `burst` at once."""

    count: int
    period_seconds: float
    burst: int

    @classmethod
    def parse(cls, spec: str) -> Rate:
        """`"20/10s:10"`: 20 per 10 seconds with a burst of 10 (burst defaults to count)."""
        # Callers parse their setting on every request (a regex match each): remember them.
        known = _PARSED.get(spec)
        if known is not None:
            return known
        match = _SPEC.match(spec)
        if not match or int(match[1]) < 1 or float(match[2]) <= 0:
            raise ValueError(f"rate limit {spec!r} is not of the form COUNT/SECONDSs[:BURST]")
        count = int(match[1])
        rate = cls(count, float(match[2]), int(match[3]) if match[3] else count)
        if len(_PARSED) < 1000:  # settings are few; never grow without bound
            _PARSED[spec] = rate
        return rate

    @property
    def interval_ms(self) -> float:
        """Time one request's worth of budget takes to come back."""
        return self.period_seconds * 1000 / self.count


class RateLimiter:
    """Checks and consumes units of buckets; raises `RateLimited` when one is empty.

    With Redis the buckets are shared by the cluster. When Redis does not answer, the check falls
    back to this node's memory rather than failing the request: a Redis outage must not take
    the API down with it, and per-node limits still bound abuse until Redis is back.

    A circuit breaker keeps a hung Redis (one that accepts and never answers) from costing
    every call its full timeout: the first call that fails or takes longer than `timeout`
    trips it, which also ends every call still waiting on Redis at once. While it is open,
    limits use memory only; after `open_seconds` one call probes Redis again, and the breaker
    closes when that call is answered (else it stays open for another `open_seconds`).
    """

    def __init__(
        self,
        redis: RedisClient | None,
        prefix: str,
        *,
        refused: Callable[[str], None] | None = None,
        timeout: float = 1.0,
        open_seconds: float = 2.0,
        tripped: Callable[[], None] | None = None,
    ) -> None:
        """`refused(scope)` is told of every refusal; the scope is the bucket name's first part.
        `tripped()` is told each time the breaker opens."""
        self._refused = refused
        self._timeout = timeout
        self._open_seconds = open_seconds
        self._tripped = tripped
        self._open_until = 0.0  # 0: closed (Redis is used); else the monotonic time of a probe
        self._waiting: set[asyncio.Timeout] = set()  # the deadlines of calls waiting on Redis
        self.trips = 0
        self._redis = redis
        self._prefix = f"{prefix}:rl:"
        self._local: dict[str, float] = {}
        self._script = redis.register_script(_GCRA_LUA) if redis is not None else None
        # On a Redis Cluster one script call may only touch keys of one slot: several
        # buckets are then checked first and consumed after (a race may let a request or two
        # past a limit; a single bucket stays exact).
        self._per_slot = is_cluster(redis)

    async def hit(self, bucket: str, rate: Rate) -> None:
        """Consume one unit of `bucket` or raise `RateLimited` with the wait."""
        await self.hit_all([(bucket, rate)])

    async def hit_all(self, checks: Sequence[tuple[str, Rate]]) -> None:
        """Consume one unit of every bucket, or of none and raise `RateLimited`."""
        wait_ms = await self._run(checks, consume=True)
        if wait_ms > 0:
            self._refuse(checks)
            raise RateLimited(wait_ms)

    async def check_all(self, checks: Sequence[tuple[str, Rate]]) -> None:
        """Raise `RateLimited` if any bucket is empty; consumes nothing."""
        wait_ms = await self._run(checks, consume=False)
        if wait_ms > 0:
            self._refuse(checks)
            raise RateLimited(wait_ms)

    async def peek_all(self, checks: Sequence[tuple[str, Rate]]) -> int:
        """The wait in ms before every bucket has a unit (0: all have); consumes and counts
        nothing, so a caller can ask "is this bucket full?" without a refusal on record."""
        return await self._run(checks, consume=False)

    def _refuse(self, checks: Sequence[tuple[str, Rate]]) -> None:
        if self._refused is not None and checks:
            self._refused(checks[0][0].split(":", 1)[0])

    async def wait_ms(self, bucket: str, rate: Rate) -> int:
        """0 and consumed, or how long to wait (nothing consumed)."""
        return await self._run([(bucket, rate)], consume=True)

    async def reset(self, bucket: str) -> None:
        """Refill `bucket` completely (a successful login clears its account's failures)."""
        self._local.pop(bucket, None)
        if self._redis is not None and self._closed_or_probe():
            try:
                async with self._deadline():
                    await self._redis.delete(self.key(bucket))
            except Exception as exc:
                self._trip(exc)
            else:
                self._answered()

    @property
    def breaker_open(self) -> bool:
        """Limits currently use this node's memory because Redis failed or hung."""
        return self._open_until != 0.0

    def _closed_or_probe(self) -> bool:
        """Whether this call may go to Redis: the breaker is closed, or it is the probe."""
        if not self._open_until:
            return True
        now = time.monotonic()
        if now < self._open_until:
            return False
        # This call is the probe: the others stay in memory until it is answered or times out
        # (a cancelled probe is then simply followed by another).
        self._open_until = now + self._timeout
        return True

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """`timeout` for one Redis call, which a trip elsewhere ends at once."""
        async with asyncio.timeout(self._timeout) as deadline:
            self._waiting.add(deadline)
            try:
                yield
            finally:
                self._waiting.discard(deadline)

    def _answered(self) -> None:
        if self._open_until:
            log.warning("rate limits are back on redis")
        self._open_until = 0.0

    def _trip(self, exc: Exception) -> None:
        was_closed = not self._open_until
        self._open_until = time.monotonic() + self._open_seconds
        if not was_closed:
            return  # already open: the probe failed, or a call that was waiting ended
        self.trips += 1
        if self._tripped is not None:
            self._tripped()
        log.warning(
            "rate limits fall back to this node for %.1fs: redis: %s",
            self._open_seconds,
            exc.__class__.__name__ if not str(exc) else exc,
        )
        now = asyncio.get_running_loop().time()
        for deadline in list(self._waiting):
            if not deadline.expired():  # the others waiting on the same Redis give up now too
                deadline.reschedule(now)

    def forget(self, bucket: str) -> None:
        """Drop a local bucket whose owner has gone (a closed socket)."""
        self._local.pop(bucket, None)

    def key(self, bucket: str) -> str:
        """The bucket's Redis key: its name is its hash tag, so its slot depends on it alone."""
        return f"{self._prefix}{{{bucket}}}"

    async def _run(self, checks: Sequence[tuple[str, Rate]], *, consume: bool) -> int:
        if not checks:
            return 0
        if self._script is not None and self._closed_or_probe():
            try:
                async with self._deadline():
                    if self._per_slot and len(checks) > 1:
                        wait = max(
                            [await self._call(checks[i : i + 1], False) for i in range(len(checks))]
                        )
                        if wait <= 0 and consume:
                            wait = max(
                                [
                                    await self._call(checks[i : i + 1], True)
                                    for i in range(len(checks))
                                ]
                            )
                    else:
                        wait = await self._call(checks, consume)
            except Exception as exc:
                self._trip(exc)
            else:
                self._answered()
                return wait
        return self._local_run(checks, consume)

    async def _call(self, checks: Sequence[tuple[str, Rate]], consume: bool) -> int:
        assert self._script is not None
        args: list[float | int] = [1 if consume else 0]
        for _, rate in checks:
            args.extend((rate.interval_ms, rate.burst))
        result = await self._script(keys=[self.key(bucket) for bucket, _ in checks], args=args)
        return int(float(result))

    def _local_run(self, checks: Sequence[tuple[str, Rate]], consume: bool) -> int:
        now = time.monotonic() * 1000
        wait = 0.0
        new_tats = []
        for bucket, rate in checks:
            interval = rate.interval_ms
            tat = max(self._local.get(bucket, now), now)
            wait = max(wait, tat + interval - interval * rate.burst - now)
            new_tats.append((bucket, tat + interval))
        if wait > 0:
            return math.ceil(wait)
        if consume:
            self._local.update(new_tats)
            if len(self._local) > 100_000:
                self._forget_idle(now)
        return 0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, tat in self._local.items() if tat <= now]:
            del self._local[key]
