"""The push queue: rows written with their notification, claimed by one node with a lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class QueuedPush:
    """One notification still to push to one user's devices."""

    id: int
    user_id: str
    notification_id: int
    held: bool
    attempts: int
    device_ids: list[int] | None
    created_at: datetime


_RETURNING = "returning id, user_id, notification_id, held, attempts, device_ids, created_at"


def _rows(records: list[Any]) -> list[QueuedPush]:
    rows = [
        QueuedPush(
            id=r["id"],
            user_id=r["user_id"],
            notification_id=r["notification_id"],
            held=r["held"],
            attempts=r["attempts"],
            device_ids=None if r["device_ids"] is None else list(r["device_ids"]),
            created_at=r["created_at"],
        )
        for r in records
    ]
    rows.sort(key=lambda row: row.id)
    return rows


# Only recipients with a device get a row: users without one cost one index probe.
ENQUEUE = """
insert into push_queue (user_id, notification_id, due_at)
select distinct d.user_id, $1::bigint, now() + make_interval(secs => $3)
from devices d where d.user_id = any($2::text[])
"""


async def enqueue(
    conn: Connection, notification_id: int, user_ids: list[str], delay_seconds: float = 0.0
) -> int:
    """Queue a push of the notification to each of `user_ids` that has a device; how many."""
    if not user_ids:
        return 0
    status: str = await conn.execute(ENQUEUE, notification_id, user_ids, delay_seconds)
    return int(status.rsplit(" ", 1)[-1])


CLAIM_DUE = f"""
update push_queue set claimed_until = now() + make_interval(secs => $2)
where id in (
    select id from push_queue
    where due_at <= now() and (claimed_until is null or claimed_until < now())
    order by due_at, id limit $1 for update skip locked
)
{_RETURNING}
"""


async def claim_due(conn: Connection, limit: int, lease_seconds: float) -> list[QueuedPush]:
    """Claim up to `limit` due rows nobody holds, for `lease_seconds`."""
    return _rows(await conn.fetch(CLAIM_DUE, limit, lease_seconds))


# A summary covers every held row of the user, due or not: once quiet hours are over (or
# changed) they all go out together.
CLAIM_HELD = f"""
update push_queue set claimed_until = now() + make_interval(secs => $2)
where id in (
    select id from push_queue
    where user_id = $1 and held and (claimed_until is null or claimed_until < now())
    for update skip locked
)
{_RETURNING}
"""


async def claim_held(conn: Connection, user_id: str, lease_seconds: float) -> list[QueuedPush]:
    """Claim the user's other held rows (those no node holds)."""
    return _rows(await conn.fetch(CLAIM_HELD, user_id, lease_seconds))


DELETE_ROWS = "delete from push_queue where id = any($1::bigint[])"


async def finish(conn: Connection, ids: list[int]) -> None:
    """The rows are done with (sent, skipped, dropped or given up on)."""
    if ids:
        await conn.execute(DELETE_ROWS, ids)


RELEASE = "update push_queue set claimed_until = null where id = any($1::bigint[])"


async def release(conn: Connection, ids: list[int]) -> None:
    """Give claimed rows back untouched (the next round, here or elsewhere, takes them)."""
    if ids:
        await conn.execute(RELEASE, ids)


HOLD = """
update push_queue set held = true, due_at = $2, claimed_until = null
where id = any($1::bigint[])
"""


async def hold(conn: Connection, ids: list[int], until: datetime) -> None:
    """Quiet hours: keep the rows until `until`, then summarise them."""
    await conn.execute(HOLD, ids, until)


RETRY = """
update push_queue set attempts = attempts + 1, device_ids = $2::bigint[],
    due_at = now() + make_interval(secs => $3), claimed_until = null, last_error = $4
where id = any($1::bigint[])
"""


async def retry(
    conn: Connection, ids: list[int], device_ids: list[int], delay_seconds: float, error: str
) -> None:
    """Try these devices again after `delay_seconds`."""
    await conn.execute(RETRY, ids, device_ids, delay_seconds, error[:500])


RELEASE_HELD = """
update push_queue set due_at = now(), claimed_until = null where user_id = $1 and held
"""


async def release_held(conn: Connection, user_id: str) -> int:
    """The user's quiet hours changed: their held rows are looked at again now."""
    status: str = await conn.execute(RELEASE_HELD, user_id)
    return int(status.rsplit(" ", 1)[-1])


SECONDS_UNTIL_NEXT = """
select extract(epoch from min(due_at) - now())::float8 from push_queue
where claimed_until is null or claimed_until < now()
"""


async def seconds_until_next(conn: Connection) -> float | None:
    """How long until the next row falls due (negative: overdue); None when empty."""
    value: float | None = await conn.fetchval(SECONDS_UNTIL_NEXT)
    return value


# Pending: due and not held by quiet hours. The age is how late the oldest of them is.
BACKLOG = """
select count(*) filter (where not held) as pending,
       count(*) filter (where held) as held,
       coalesce(extract(epoch from now() - min(due_at) filter (
           where not held and due_at <= now()))::float8, 0) as oldest
from push_queue
"""


async def backlog(conn: Connection) -> tuple[int, int, float]:
    """(pending rows, held rows, seconds the oldest due pending row has waited)."""
    row = await conn.fetchrow(BACKLOG)
    assert row is not None
    return int(row["pending"]), int(row["held"]), max(0.0, float(row["oldest"]))
