"""A Redis that hangs costs the rate limiter one breaker trip, not a timeout per call.

"Hung" is a real TCP listener started by the test that accepts connections and never answers
(as a SIGSTOPped Redis does); once told to recover, it forwards new connections to the real
Redis, and the breaker closes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from backchannel.errors import RateLimited
from backchannel.server.keys import RUNTIME
from backchannel.server.ratelimit import Rate, RateLimiter
from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.outages import TcpProxy
from tests.services import RunServices

TIMEOUT, OPEN_SECONDS = 0.3, 0.5


class HangingRedis:
    """Accepts and never answers; after `recover()`, new connections reach the real Redis."""

    def __init__(self, real_url: str) -> None:
        parts = urlsplit(real_url)
        self._real = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.hanging = True
        self._held: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port: int = self._server.sockets[0].getsockname()[1]

    def recover(self) -> None:
        self.hanging = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hanging:
            self._held.append(writer)  # read nothing, answer nothing, keep it open
            return
        up_reader, up_writer = await asyncio.open_connection(*self._real)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def close(self) -> None:
        for writer in self._held:
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def hung(services: RunServices) -> AsyncIterator[HangingRedis]:
    listener = HangingRedis(services.redis_url)
    await listener.start()
    yield listener
    await listener.close()


async def test_a_hung_redis_trips_the_breaker_once_and_limits_fall_back_to_memory(
    hung: HangingRedis, services: RunServices
) -> None:
    db = urlsplit(services.redis_url).path or "/0"
    # A 5-second command timeout, as Backchannel's own client has: without the breaker every
    # call would wait that long (or the limiter's own timeout, each).
    redis = Redis.from_url(f"redis://127.0.0.1:{hung.port}{db}", socket_timeout=5)
    trips: list[float] = []
    limiter = RateLimiter(
        redis,
        services.redis_prefix,
        timeout=TIMEOUT,
        open_seconds=OPEN_SECONDS,
        tripped=lambda: trips.append(time.monotonic()),
    )
    rate = Rate.parse("50/60s:50")
    try:
        started = time.monotonic()
        # 40 concurrent calls, all waiting on the hung Redis: one trip ends them all.
        outcomes = await asyncio.gather(
            *(limiter.hit(f"user:{i}", rate) for i in range(40)), return_exceptions=True
        )
        assert outcomes == [None] * 40
        first_wave = time.monotonic() - started
        assert first_wave < TIMEOUT + 0.5, first_wave
        assert len(trips) == 1 and limiter.breaker_open
        # While open, calls are answered from memory at once, and limits still hold.
        started = time.monotonic()
        for _ in range(50):
            await limiter.hit("user:busy", rate)
        with pytest.raises(RateLimited):
            await limiter.hit("user:busy", rate)
        assert time.monotonic() - started < 0.2
        # Still hung when the breaker lets one probe through: one more timeout, no new trip
        # counted, and the breaker stays open.
        await asyncio.sleep(OPEN_SECONDS + 0.05)
        started = time.monotonic()
        await asyncio.gather(*(limiter.hit(f"probe:{i}", rate) for i in range(10)))
        assert time.monotonic() - started < TIMEOUT + 0.3
        assert len(trips) == 1 and limiter.breaker_open

        # Redis answers again: the next probe closes the breaker, and limits are shared again.
        hung.recover()
        await redis.connection_pool.disconnect()
        await asyncio.sleep(OPEN_SECONDS + 0.05)
        await limiter.hit("user:shared", rate)
        assert not limiter.breaker_open
        real = Redis.from_url(services.redis_url)
        try:
            assert await real.exists(limiter.key("user:shared")) == 1
        finally:
            await real.aclose()
        assert len(trips) == 1
    finally:
        await redis.aclose()


async def test_with_redis_silent_http_limits_cost_one_short_trip_then_answer_from_memory(
    settings: Settings, services: RunServices
) -> None:
    parts = urlsplit(services.redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    silent = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}",
            "redis_breaker_timeout_seconds": TIMEOUT,
            "redis_breaker_open_seconds": 30.0,
        }
    )
    try:
        async with node(silent) as n:
            user = await n.api.register()
            proxy.freeze()  # no error, no FIN: Redis simply stops answering
            timings = []
            for _ in range(10):
                started = time.monotonic()
                status, _body = await n.api.call("GET", "/api/v1/conversations", user=user)
                timings.append(time.monotonic() - started)
                assert status == 200
            trips = n.server.app[RUNTIME].metrics.registry.get_sample_value(
                "backchannel_ratelimit_breaker_trips_total"
            )
            assert trips == 1
            assert timings[0] < TIMEOUT + 1.0, timings  # the one trip
            assert max(timings[1:]) < 0.5, timings  # then memory, at once
            proxy.thaw()
    finally:
        await proxy.close()
