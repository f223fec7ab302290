"""The exit's one grace period: the drain leaves a closing share, and nothing outlives it."""

from __future__ import annotations

import asyncio

from backchannel.server.shutdown import LAST_CHANCE_SECONDS, InFlight, ShutdownBudget


async def test_the_drain_keeps_a_closing_share_of_the_grace() -> None:
    budget = ShutdownBudget(2.0)
    assert budget.closing_seconds == 0.5
    assert ShutdownBudget(60.0).closing_seconds == 1.0
    budget.start()
    assert 1.4 < budget.drain_seconds_left() <= 1.5
    assert 1.9 < budget.seconds_left() <= 2.0
    assert budget.seconds_left(at_most=0.2) == 0.2


async def test_a_spent_grace_still_gives_each_close_a_last_chance() -> None:
    budget = ShutdownBudget(0.0)
    budget.start()
    await asyncio.sleep(0.01)
    assert budget.drain_seconds_left() == 0.0
    assert budget.seconds_left() == LAST_CHANCE_SECONDS


async def test_what_is_still_in_flight_when_the_wait_ends_is_cancelled() -> None:
    inflight = InFlight()
    release = asyncio.Event()

    async def handled(wait: bool) -> None:
        inflight.enter()
        try:
            if wait:
                await release.wait()
        finally:
            inflight.leave()

    quick = asyncio.create_task(handled(False))
    stuck = asyncio.create_task(handled(True))
    await quick
    assert inflight.count == 1
    assert not await inflight.wait_idle(0.05)
    assert inflight.cancel_all() == 1
    await asyncio.gather(stuck, return_exceptions=True)
    assert stuck.cancelled()
    assert inflight.count == 0
    assert await inflight.wait_idle(0.01)
