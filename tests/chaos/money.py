"""Money in the chaos test: one paid message unlocked from the wallet per phase, each unlock
retried (on any node) until it succeeds or is `conflict` (already unlocked by an attempt whose
answer was lost). Unlocks are idempotent, so the end state is exact: one purchase per paid
message, the wallet down by their prices, the ledger balanced."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.chatters import Chatter, Planned
from tests.support import User

PRICE_CENTS = 100
TOPUP_CENTS = 1000


@dataclass
class Unlock:
    """One unlock attempt series and how it ended (HTTP status of the last answer)."""

    message_id: str
    at: float
    status: int | None = None
    attempts: int = 0
    answers: list[str] = field(default_factory=list)


async def prepare(
    urls: list[str], creator: Chatter, fan: User, conversation_id: str, count: int
) -> list[str]:
    """Top up the fan's wallet and have the creator send `count` paid messages; their ids."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{urls[0]}/api/v1/dev/wallet/topup",
            json={"amount_cents": TOPUP_CENTS},
            headers=fan_headers(fan),
        ) as response,
    ):
        assert response.status == 200, await response.text()
    assert await creator.wait_connected(10), "creator not connected"
    ids = []
    for k in range(count):
        planned = Planned(conversation_id, f"paid-{k}", 0.0)
        await creator.send_all(
            [planned], time.monotonic(), time.monotonic() + 20, price=PRICE_CENTS
        )
        outcome = creator.outcomes[-1]
        assert outcome.ack is not None, outcome
        ids.append(str(outcome.ack["id"]))
    return ids


def fan_headers(fan: User) -> dict[str, str]:
    """`Authorization` for the fan."""
    return {"Authorization": f"Bearer {fan.access_token}"}


async def unlock_all(
    urls: list[str], fan: User, unlocks: list[Unlock], started: float, give_up_at: float
) -> None:
    """Unlock each paid message at its offset from `started`, retrying until it is done."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for k, unlock in enumerate(unlocks):
            delay = started + unlock.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"kind": "ppv_message", "target_id": unlock.message_id, "pay_with": "wallet"}
            while time.monotonic() < give_up_at:
                url = urls[(k + unlock.attempts) % len(urls)]
                unlock.attempts += 1
                try:
                    async with session.post(
                        f"{url}/api/v1/purchases", json=body, headers=fan_headers(fan)
                    ) as response:
                        unlock.status = response.status
                        unlock.answers.append(f"{response.status} {await response.text()}"[:200])
                except (aiohttp.ClientError, TimeoutError) as exc:
                    unlock.status = None
                    unlock.answers.append(type(exc).__name__)
                if unlock.status in (201, 409):
                    break
                await asyncio.sleep(0.2)
