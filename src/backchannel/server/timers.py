"""Timers shared by every socket: one event-loop timer each, not one task or handle per socket.

An idle socket used to carry its own timers: a task sleeping until the next Engine.IO ping, a
`wait_for` watching for the pong, a `call_later` for its token's expiry. Each costs a few hundred
bytes to a kilobyte, paid by every one of tens of thousands of idle sockets. Here a socket costs
one slot in a shared structure, and each structure keeps a single `loop.call_at` for its
earliest entry. Entries are never removed early: whoever fires checks that the entry still
applies (the socket is still open, the ping still unanswered).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class DelayQueue(Generic[T]):
    """Items that each fire a fixed `delay` after they were added.

    With one delay for all, due times arrive in the order items are added, so a FIFO of
    time buckets is enough: no heap, no per-item timer. Items fire up to `resolution` late.
    """

    def __init__(self, delay: float, fire: Callable[[T], None], resolution: float = 0.05) -> None:
        self.delay = delay
        self.resolution = resolution
        self._fire = fire
        self._buckets: deque[tuple[int, list[T]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return sum(len(items) for _, items in self._buckets)

    def add(self, item: T) -> None:
        """Fire `item` after the delay."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + self.delay) / self.resolution)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= tick:
            # The clock never runs backwards, so this is the tail bucket's own tick.
            buckets[-1][1].append(item)
        else:
            buckets.append((tick, [item]))
        if self._timer is None:
            self._timer = loop.call_at(buckets[0][0] * self.resolution, self._run)

    def _run(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        # Timers may fire a clock tick early; half a bucket of slack keeps that from
        # costing a whole extra wake-up.
        now_tick = (loop.time() + self.resolution / 2) / self.resolution
        buckets = self._buckets
        while buckets and buckets[0][0] <= now_tick:
            _, items = buckets.popleft()
            for item in items:
                try:
                    self._fire(item)
                except Exception:
                    log.exception("timer callback failed")
        if buckets and self._timer is None:
            self._timer = loop.call_at(buckets[0][0] * self.resolution, self._run)

    def close(self) -> None:
        """Drop every pending item."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()


class Deadlines:
    """Keys that each fire at their own loop time: a heap and one timer.

    `cancel` only forgets the key; its heap entry is skipped when it comes up, and the heap is
    rebuilt when stale entries outnumber live ones, so churn cannot grow it without bound.
    """

    def __init__(self, fire: Callable[[str], None]) -> None:
        self._fire = fire
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __contains__(self, key: str) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def add(self, key: str, when: float) -> None:
        """Fire `key` at loop time `when` (replacing an earlier deadline for it)."""
        self._due[key] = when
        heapq.heappush(self._heap, (when, key))
        if when < self._timer_at:
            self._arm(when)

    def cancel(self, key: str) -> bool:
        """Forget `key`; True if it was pending."""
        if self._due.pop(key, None) is None:
            return False
        if not self._due:
            self._heap.clear()
            self._disarm()
        elif len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(when, k) for k, when in self._due.items()]
            heapq.heapify(self._heap)
        return True

    def close(self) -> None:
        """Forget everything."""
        self._due.clear()
        self._heap.clear()
        self._disarm()

    def _arm(self, when: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_at(when, self._run)
        self._timer_at = when

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _run(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = asyncio.get_running_loop().time()
        heap = self._heap
        while heap and heap[0][0] <= now + 0.001:
            when, key = heapq.heappop(heap)
            if self._due.get(key) != when:
                continue  # cancelled, or moved
            del self._due[key]
            try:
                self._fire(key)
            except Exception:
                log.exception("deadline callback failed")
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
