"""The push queue's worker: one per node, woken after a commit that queued pushes.

Rows are claimed with `for update skip locked` and a lease, so every node may run a worker
and exactly one sends each row; a node that dies mid-send leaves its rows due again once the
lease lapses. Between wake-ups it polls, as a fallback, and sleeps until the next row falls
due (a retry, a digest's window end, the end of quiet hours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from backchannel.domain.push_delivery import RetryPolicy, Sender, WorkerConfig, deliver_due
from backchannel.persistence import push_queue
from backchannel.server.keys import RUNTIME
from backchannel.server.runtime import Runtime
from backchannel.server.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def worker_config(settings: Settings) -> WorkerConfig:
    """The worker's knobs from the settings."""
    return WorkerConfig(
        lease_seconds=settings.push_queue_lease_seconds,
        batch=settings.push_queue_batch,
        send_timeout_seconds=settings.push_timeout_seconds,
        retry=RetryPolicy(
            max_attempts=settings.push_max_attempts,
            base_seconds=settings.push_retry_base_seconds,
            max_seconds=settings.push_retry_max_seconds,
        ),
    )


class PushWorker:
    """Sends what the push queue holds; `wake` it after a commit that queued pushes."""

    def __init__(
        self, rt: Runtime, sender: Sender, config: WorkerConfig, clock: Clock = _utc_now
    ) -> None:
        self._rt = rt
        self.sender = sender
        self.config = config
        # Quiet hours are judged by this clock (a test may set one).
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Pushes were queued (committed): look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and stop."""
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Handle every row due now; returns how many were claimed."""
        handled = 0
        while not self._stopping:
            claimed = await deliver_due(self._rt, self.sender, self.config, self.clock())
            handled += claimed
            if claimed < self.config.batch:
                break
        return handled

    async def run(self) -> None:
        """Rounds until stopped: after each, sleep until woken, polled or the next due row."""
        poll = self._rt.settings.push_queue_poll_seconds
        while not self._stopping:
            self._wake.clear()
            wait = poll
            try:
                await self.run_once()
                async with self._rt.db.connection() as conn:
                    due = await push_queue.seconds_until_next(conn)
                if due is not None:
                    wait = min(max(due, 0.05), poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("push queue round failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)


async def push_queue_worker(app: web.Application) -> AsyncIterator[None]:
    """Run this node's push queue worker over the providers `push_providers` opened."""
    runtime = app[RUNTIME]
    worker = PushWorker(runtime, runtime.push, worker_config(runtime.settings))
    runtime.push_worker = worker
    task = asyncio.create_task(worker.run(), name="push-queue")
    yield
    worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, runtime.shutdown.seconds_left(at_most=5.0))
    runtime.push_worker = None
