"""The outbox: what sockets must be told about a committed change, written in its transaction.

The request that wrote rows claims and publishes them right after commit; a background task
on every node publishes rows whose claim lapsed (a crash between commit and emit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
where id = any($1::bigint[]) and sent_at is null
    and (claimed_until is null or claimed_until < now())
{_RETURNING}
"""

CLAIM_STALE = f"""
update outbox set claimed_until = now() + make_interval(secs => $2)
where id in (
    select id from outbox
    where sent_at is null and (claimed_until is null or claimed_until < now())
        and created_at < now() - make_interval(secs => $3)
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
from outbox where sent_at is null
"""


async def backlog(conn: Connection) -> tuple[int, float]:
    """Rows not yet delivered, and the age in seconds of the oldest (0 when none)."""
    record = await conn.fetchrow(BACKLOG)
    return int(record["rows"]), float(record["age"])
