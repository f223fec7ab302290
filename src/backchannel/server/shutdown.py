"""One grace period for the whole exit of a node, shared by every step of it.

`BACKCHANNEL_SHUTDOWN_GRACE_SECONDS` bounds SIGTERM-to-exit, not each step: the drain waits for
what is in flight, aiohttp waits for open requests, and every resource closes, all against the
same deadline. Without that each step had its own timeout (the pool alone 10 s), so a send stuck
on a lock kept the node up for several graces.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

# The part of the grace kept for closing once the drain has stopped waiting: aiohttp's own
# request shutdown, the pool, Redis and the background tasks. A quarter, at most a second.
CLOSING_SHARE = 0.25
CLOSING_CAP_SECONDS = 1.0
# Even past the deadline a close gets this long before it is forced.
LAST_CHANCE_SECONDS = 0.05


@dataclass
class ShutdownBudget:
    """The deadline of a stopping node; unset until the drain starts."""

    grace_seconds: float
    _deadline: float | None = None

    @property
    def closing_seconds(self) -> float:
        """What is kept, out of the grace, for closing after the drain."""
        return min(CLOSING_CAP_SECONDS, self.grace_seconds * CLOSING_SHARE)

    def start(self) -> None:
        """The drain begins now: the grace runs from here."""
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self.grace_seconds

    def drain_seconds_left(self) -> float:
        """How long the drain may still wait for work in flight."""
        return max(0.0, self._left() - self.closing_seconds)

    def seconds_left(self, *, at_most: float | None = None) -> float:
        """What remains of the grace (a short last chance once it is spent), capped if asked."""
        left = max(LAST_CHANCE_SECONDS, self._left())
        return left if at_most is None else min(at_most, left)

    def _left(self) -> float:
        if self._deadline is None:
            return self.grace_seconds
        return self._deadline - asyncio.get_running_loop().time()


@dataclass
class InFlight:
    """The events and requests being handled, so the drain can wait for their answers.

    It keeps their tasks too: what is still running when the drain stops waiting is cancelled
    before its transport closes, so its transaction rolls back instead of committing a send
    whose ack could no longer reach the client.
    """

    idle: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: dict[asyncio.Task[object] | None, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def count(self) -> int:
        """How many are in flight."""
        return sum(self._tasks.values())

    def enter(self) -> None:
        """An event or request started, in the current task."""
        task = asyncio.current_task()
        self._tasks[task] = self._tasks.get(task, 0) + 1
        self.idle.clear()

    def leave(self) -> None:
        """It was answered."""
        task = asyncio.current_task()
        left = self._tasks.get(task, 0) - 1
        if left > 0:
            self._tasks[task] = left
        else:
            self._tasks.pop(task, None)
        if not self._tasks:
            self.idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight, at most `timeout`; whether that happened."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True

    def cancel_all(self) -> int:
        """Cancel whatever is still in flight; how many tasks that was."""
        tasks = [task for task in self._tasks if task is not None and not task.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)
