"""The shared timers fire what is due, in order, once, and forget what was cancelled."""

from __future__ import annotations

import asyncio

from backchannel.server.timers import Deadlines, DelayQueue


async def test_a_delay_queue_fires_each_item_once_after_its_delay_in_order() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    all_fired = asyncio.Event()

    def fire(item: str) -> None:
        fired.append((item, loop.time()))
        if len(fired) == 3:
            all_fired.set()

    queue: DelayQueue[str] = DelayQueue(0.2, fire)
    start = loop.time()
    queue.add("a")
    await asyncio.sleep(0.1)
    queue.add("b")
    queue.add("c")
    await asyncio.wait_for(all_fired.wait(), 5)

    assert [item for item, _ in fired] == ["a", "b", "c"]
    a_at, b_at = fired[0][1] - start, fired[1][1] - start
    # Never early (timers may run a clock tick ahead); late by at most a bucket, give or take
    # a busy machine.
    assert 0.19 <= a_at <= 0.2 + queue.resolution + 0.2
    assert 0.29 <= b_at <= 0.3 + queue.resolution + 0.2
    assert len(queue) == 0


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    fired: list[int] = []

    def fire(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        fired.append(item)

    queue: DelayQueue[int] = DelayQueue(0.05, fire)
    for item in range(3):
        queue.add(item)
    await asyncio.sleep(0.2)
    assert fired == [0, 2]


async def test_deadlines_fire_in_time_order_whatever_order_they_were_added() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    deadlines = Deadlines(fired.append)
    now = loop.time()
    deadlines.add("late", now + 1.0)
    deadlines.add("soon", now + 0.1)
    deadlines.add("middle", now + 0.5)
    await asyncio.sleep(0.3)
    assert fired == ["soon"]
    await asyncio.sleep(1.0)
    assert fired == ["soon", "middle", "late"]
    assert len(deadlines) == 0


async def test_a_cancelled_or_moved_deadline_fires_only_as_it_stands() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    deadlines = Deadlines(fired.append)
    now = loop.time()
    deadlines.add("gone", now + 0.05)
    deadlines.add("moved", now + 0.05)
    deadlines.add("kept", now + 0.1)
    assert deadlines.cancel("gone")
    assert not deadlines.cancel("gone")
    deadlines.add("moved", now + 0.8)
    await asyncio.sleep(0.4)
    assert fired == ["kept"]
    assert "moved" in deadlines
    await asyncio.sleep(0.8)
    assert fired == ["kept", "moved"]


async def test_churn_does_not_grow_the_deadline_heap() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(lambda key: None)
    deadlines.add("stays", loop.time() + 60)
    for i in range(5000):
        deadlines.add(f"k{i}", loop.time() + 60)
        deadlines.cancel(f"k{i}")
    assert len(deadlines) == 1
    assert len(deadlines._heap) <= 2 * len(deadlines) + 64 + 1
    deadlines.close()
