"""Stripe event ids seen: each takes effect once."""

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
