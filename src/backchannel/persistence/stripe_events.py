"""Stripe event ids seen (each takes effect once) and reversals seen before their payment."""

from __future__ import annotations

from datetime import datetime

from backchannel.persistence.database import Connection

INSERT_EVENT = """
insert into stripe_events (id, type, created, outcome) values ($1, $2, $3, 'received')
on conflict (id) do nothing
returning id
"""


async def claim(conn: Connection, event_id: str, event_type: str, created: datetime) -> bool:
    """Record an event id; False if it was already recorded (a replay or a duplicate).

    A concurrent duplicate waits on the primary key until the first commits, then sees it.
    """
    return await conn.fetchval(INSERT_EVENT, event_id, event_type, created) is not None


SET_OUTCOME = "update stripe_events set outcome = $2 where id = $1"


async def set_outcome(conn: Connection, event_id: str, outcome: str) -> None:
    """Say what an event did (for operators reading the table)."""
    await conn.execute(SET_OUTCOME, event_id, outcome)


SELECT_OUTCOME = "select outcome from stripe_events where id = $1"


async def outcome(conn: Connection, event_id: str) -> str | None:
    """What an event did, or None if never seen."""
    value: str | None = await conn.fetchval(SELECT_OUTCOME, event_id)
    return value


INSERT_REVERSAL = """
insert into stripe_reversals (payment_intent_id, event_id, reason) values ($1, $2, $3)
on conflict (payment_intent_id) do nothing
"""


async def add_reversal(
    conn: Connection, payment_intent_id: str, event_id: str, reason: str
) -> None:
    """Remember that a payment was refunded or disputed before we saw it succeed."""
    await conn.execute(INSERT_REVERSAL, payment_intent_id, event_id, reason)


SELECT_REVERSAL = "select reason from stripe_reversals where payment_intent_id = $1"


async def reversal(conn: Connection, payment_intent_id: str) -> str | None:
    """Why a payment was reversed before it arrived, if it was."""
    value: str | None = await conn.fetchval(SELECT_REVERSAL, payment_intent_id)
    return value
