"""The outbox: what sockets must be told about a committed change, written in its transaction.

The request that wrote rows claims and publishes them right after commit; a background task
on every node publishes rows whose claim lapsed (a crash between commit and emit) and rows
whose publish failed once their backoff is over. A row that failed `max_attempts` times is
dead: kept, shown to the operator, never claimed again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from backchannel.persistence.database import Connection

Kind = Literal["emit_user", "emit_room", "join", "leave"]


@dataclass(frozen=True)
class OutboxRow:
    """One thing to deliver."""

    id: int
    kind: Kind
    namespaces: list[str]
    target: str
    event: str | None
    payload: Any


INSERT_ROW = """
insert into outbox (kind, namespaces, target, event, payload)
values ($1, $2, $3, $4, $5::text::jsonb) returning id
"""


async def add(
    conn: Connection,
    kind: Kind,
    namespaces: list[str],
    target: str,
    event: str | None = None,
    payload: Any = None,
) -> int:
    """Queue a delivery inside the caller's transaction."""
    row_id: int = await conn.fetchval(
        INSERT_ROW, kind, namespaces, target, event, json.dumps(payload or {})
    )
    return row_id


_RETURNING = "returning id, kind, namespaces, target, event, payload::text as payload"

CLAIM_IDS = f"""
update outbox set claimed_until = now() + make_interval(secs => $2)
where id = any($1::bigint[]) and sent_at is null and dead_at is null
    and (claimed_until is null or claimed_until < now())
{_RETURNING}
"""

CLAIM_STALE = f"""
update outbox set claimed_until = now() + make_interval(secs => $2)
where id in (
    select id from outbox
    where sent_at is null and dead_at is null
        and (claimed_until is null or claimed_until < now())
        and (next_attempt_at <= now()
            or (next_attempt_at is null and created_at < now() - make_interval(secs => $3)))
    order by id limit $1 for update skip locked
)
{_RETURNING}
"""


def _rows(records: list[Any]) -> list[OutboxRow]:
    rows = [
        OutboxRow(
            id=r["id"],
            kind=r["kind"],
            namespaces=list(r["namespaces"]),
            target=r["target"],
            event=r["event"],
            payload=json.loads(r["payload"]),
        )
        for r in records
    ]
    rows.sort(key=lambda row: row.id)
    return rows


async def claim(conn: Connection, ids: list[int], lease_seconds: float) -> list[OutboxRow]:
    """Claim these rows for publishing (those nobody else holds), in order."""
    return _rows(await conn.fetch(CLAIM_IDS, ids, lease_seconds))


async def claim_stale(
    conn: Connection, limit: int, lease_seconds: float, older_than_seconds: float
) -> list[OutboxRow]:
    """Claim unsent rows nobody holds that are older than the in-request publish window."""
    return _rows(await conn.fetch(CLAIM_STALE, limit, lease_seconds, older_than_seconds))


MARK_SENT = "update outbox set sent_at = now() where id = any($1::bigint[])"


async def mark_sent(conn: Connection, ids: list[int]) -> None:
    """Record that rows were published."""
    await conn.execute(MARK_SENT, ids)


MARK_FAILED = """
update outbox set
    attempts = attempts + 1,
    last_error = left($2, 1000),
    claimed_until = null,
    next_attempt_at = now() + make_interval(secs => least($4::float8, $3::float8 * 2 ^ attempts)),
    dead_at = case when attempts + 1 >= $5 then now() end
where id = $1 and sent_at is null
returning attempts, dead_at is not null as dead
"""


async def mark_failed(
    conn: Connection,
    row_id: int,
    error: str,
    *,
    retry_base_seconds: float,
    retry_max_seconds: float,
    max_attempts: int,
) -> bool:
    """Record a failed publish: the row waits out its backoff, or is dead once it has failed
    `max_attempts` times. Returns whether it is now dead."""
    record = await conn.fetchrow(
        MARK_FAILED, row_id, error, retry_base_seconds, retry_max_seconds, max_attempts
    )
    return bool(record is not None and record["dead"])


@dataclass(frozen=True)
class DeadRow:
    """A row given up on, for the operator."""

    id: int
    kind: Kind
    namespaces: list[str]
    target: str
    event: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    dead_at: datetime


LIST_DEAD = """
select id, kind, namespaces, target, event, attempts, last_error, created_at, dead_at
from outbox where dead_at is not null order by id desc limit $1
"""


async def list_dead(conn: Connection, limit: int) -> list[DeadRow]:
    """Dead rows, newest first."""
    return [
        DeadRow(
            id=r["id"],
            kind=r["kind"],
            namespaces=list(r["namespaces"]),
            target=r["target"],
            event=r["event"],
            attempts=r["attempts"],
            last_error=r["last_error"],
            created_at=r["created_at"],
            dead_at=r["dead_at"],
        )
        for r in await conn.fetch(LIST_DEAD, limit)
    ]


DEAD_COUNT = "select count(*) from outbox where dead_at is not null"


async def dead_count(conn: Connection) -> int:
    """How many rows are dead."""
    return int(await conn.fetchval(DEAD_COUNT))


DELETE_OLD = """
delete from outbox where id in (
    select id from outbox where sent_at < now() - make_interval(secs => $1) limit 1000
)
"""


async def prune(conn: Connection, keep_seconds: float) -> None:
    """Forget rows sent long ago."""
    await conn.execute(DELETE_OLD, keep_seconds)


BACKLOG = """
select count(*) as rows, coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as age
from outbox where sent_at is null and dead_at is null
"""


async def backlog(conn: Connection) -> tuple[int, float]:
    """Rows not yet delivered, and the age in seconds of the oldest (0 when none)."""
    record = await conn.fetchrow(BACKLOG)
    return int(record["rows"]), float(record["age"])
