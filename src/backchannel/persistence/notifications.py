"""Notifications and their per-recipient receipts (preferences: `notification_preferences`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class StoredNotification:
    """A published notification and the result its publish answered with."""

    id: int
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    collapse_key: str | None
    created_at: datetime
    recipients: int
    skipped: list[str]


@dataclass(frozen=True)
class ReceivedNotification:
    """A notification as one recipient has it."""

    id: int
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    collapse_key: str | None
    created_at: datetime
    read: bool


def _data(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def stored_from_row(row: Any) -> StoredNotification:
    """A `notifications` row (its `_NOTIFICATION_COLUMNS`) as a `StoredNotification`."""
    return StoredNotification(
        id=row["id"],
        type=row["type"],
        title=row["title"],
        body=row["body"],
        data=_data(row["data"]),
        collapse_key=row["collapse_key"],
        created_at=row["created_at"],
        recipients=row["recipients"],
        skipped=list(row["skipped"]),
    )


_NOTIFICATION_COLUMNS = "id, type, title, body, data, collapse_key, created_at, recipients, skipped"

INSERT_NOTIFICATION = f"""
insert into notifications
    (type, title, body, data, collapse_key, publisher, dedupe_key, recipients, skipped)
values ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9::text[])
on conflict (publisher, dedupe_key) where dedupe_key is not null do nothing
returning {_NOTIFICATION_COLUMNS}
"""


async def insert_notification(
    conn: Connection,
    *,
    type: str,
    title: str,
    body: str | None,
    data: dict[str, Any],
    collapse_key: str | None,
    publisher: str,
    dedupe_key: str | None,
    recipients: int,
    skipped: list[str],
) -> StoredNotification | None:
    """Store a notification; None when this publisher already used `dedupe_key`."""
    row = await conn.fetchrow(
        INSERT_NOTIFICATION,
        type,
        title,
        body,
        json.dumps(data),
        collapse_key,
        publisher,
        dedupe_key,
        recipients,
        skipped,
    )
    return stored_from_row(row) if row else None


SELECT_BY_DEDUPE = f"""
select {_NOTIFICATION_COLUMNS} from notifications where publisher = $1 and dedupe_key = $2
"""


async def get_by_dedupe(
    conn: Connection, publisher: str, dedupe_key: str
) -> StoredNotification | None:
    """The notification this publisher stored under `dedupe_key`."""
    row = await conn.fetchrow(SELECT_BY_DEDUPE, publisher, dedupe_key)
    return stored_from_row(row) if row else None


async def insert_or_first(
    conn: Connection,
    *,
    type: str,
    title: str,
    body: str | None,
    data: dict[str, Any],
    collapse_key: str | None,
    publisher: str,
    dedupe_key: str | None,
    recipients: int,
    skipped: list[str],
) -> tuple[StoredNotification, bool]:
    """(the stored notification, True), or (the one stored first under `dedupe_key`, False)."""
    row = await insert_notification(
        conn,
        type=type,
        title=title,
        body=body,
        data=data,
        collapse_key=collapse_key,
        publisher=publisher,
        dedupe_key=dedupe_key,
        recipients=recipients,
        skipped=skipped,
    )
    if row is not None:
        return row, True
    assert dedupe_key is not None
    first = await get_by_dedupe(conn, publisher, dedupe_key)
    assert first is not None  # the conflicting row has committed: the insert waited for it
    return first, False


SELECT_KNOWN_USERS = """
select id from users where id = any($1::text[]) and deleted_at is null
"""


async def known_user_ids(conn: Connection, user_ids: list[str]) -> set[str]:
    """Which of `user_ids` are active users."""
    rows = await conn.fetch(SELECT_KNOWN_USERS, user_ids)
    return {row["id"] for row in rows}


# Subscriptions belong to payments; these two reads are what notifications need of them.
SELECT_SUBSCRIBERS = """
select fan_id from subscriptions
where creator_id = $1 and status in ('active', 'trialing')
"""


async def subscriber_ids(conn: Connection, creator_id: str) -> list[str]:
    """The fans with an active (or trialing) subscription to `creator_id`."""
    rows = await conn.fetch(SELECT_SUBSCRIBERS, creator_id)
    return [row["fan_id"] for row in rows]


SELECT_SUBSCRIBED_CREATORS = """
select creator_id from subscriptions
where fan_id = $1 and status in ('active', 'trialing')
"""


async def subscribed_creator_ids(conn: Connection, fan_id: str) -> list[str]:
    """The creators `fan_id` has an active (or trialing) subscription to."""
    rows = await conn.fetch(SELECT_SUBSCRIBED_CREATORS, fan_id)
    return [row["creator_id"] for row in rows]


DELETE_COLLAPSED = """
delete from notification_receipts
where user_id = any($1::text[]) and collapse_key = $2 and read_at is null
returning user_id, notification_id
"""
# A replaced notification nobody else holds any more is dropped at once, unless a publisher
# may still republish with its dedupe key and expect the first result.
DELETE_ORPHANS = """
delete from notifications n
where n.id = any($1::bigint[]) and n.dedupe_key is null
  and not exists (select 1 from notification_receipts r where r.notification_id = n.id)
"""


async def take_collapsed(conn: Connection, user_ids: list[str], collapse_key: str) -> set[str]:
    """Remove these users' unread notification with `collapse_key`; returns who had one."""
    rows = await conn.fetch(DELETE_COLLAPSED, user_ids, collapse_key)
    if not rows:
        return set()
    await conn.execute(DELETE_ORPHANS, list({row["notification_id"] for row in rows}))
    return {row["user_id"] for row in rows}


INSERT_RECEIPTS = """
insert into notification_receipts (user_id, notification_id, collapse_key)
select user_id, $1, $3 from unnest($2::text[]) as recipients (user_id)
on conflict do nothing
"""


# Two publishes with one collapse key racing for a user: the later to commit takes the slot.
INSERT_COLLAPSING_RECEIPTS = """
insert into notification_receipts (user_id, notification_id, collapse_key)
select user_id, $1, $3 from unnest($2::text[]) as recipients (user_id)
on conflict (user_id, collapse_key) where collapse_key is not null and read_at is null
do update set notification_id = excluded.notification_id
"""


async def insert_receipts(
    conn: Connection, notification_id: int, user_ids: list[str], collapse_key: str | None
) -> None:
    """One receipt per recipient, in one statement (`user_ids` must be distinct)."""
    sql = INSERT_RECEIPTS if collapse_key is None else INSERT_COLLAPSING_RECEIPTS
    await conn.execute(sql, notification_id, user_ids, collapse_key)


SELECT_UNREAD_COUNTS = """
select user_id, count(*) as unread from notification_receipts
where user_id = any($1::text[]) and read_at is null
group by user_id
"""


async def unread_counts(conn: Connection, user_ids: list[str]) -> dict[str, int]:
    """Each user's number of unread notifications (zero included)."""
    rows = await conn.fetch(SELECT_UNREAD_COUNTS, user_ids)
    counts = dict.fromkeys(user_ids, 0)
    counts.update({row["user_id"]: row["unread"] for row in rows})
    return counts


SELECT_UNREAD_COUNT = """
select count(*) from notification_receipts where user_id = $1 and read_at is null
"""


async def unread_count(conn: Connection, user_id: str) -> int:
    """The user's number of unread notifications."""
    value: int = await conn.fetchval(SELECT_UNREAD_COUNT, user_id)
    return value


SELECT_AFTER = """
select n.id, n.type, n.title, n.body, n.data, n.collapse_key, n.created_at,
       r.read_at is not null as read
from notification_receipts r join notifications n on n.id = r.notification_id
where r.user_id = $1 and r.notification_id > $2
order by r.notification_id
limit $3
"""


async def list_after(
    conn: Connection, user_id: str, after: int, limit: int
) -> list[ReceivedNotification]:
    """The user's notifications newer than `after`, oldest first."""
    rows = await conn.fetch(SELECT_AFTER, user_id, after, limit)
    return [
        ReceivedNotification(
            id=row["id"],
            type=row["type"],
            title=row["title"],
            body=row["body"],
            data=_data(row["data"]),
            collapse_key=row["collapse_key"],
            created_at=row["created_at"],
            read=row["read"],
        )
        for row in rows
    ]


MARK_READ = """
update notification_receipts set read_at = now()
where user_id = $1 and notification_id = any($2::bigint[]) and read_at is null
"""
MARK_ALL_READ = """
update notification_receipts set read_at = now() where user_id = $1 and read_at is null
"""


async def mark_read(conn: Connection, user_id: str, ids: list[int] | None) -> int:
    """Mark some (or, with None, all) of the user's notifications read; returns how many."""
    if ids is None:
        status = await conn.execute(MARK_ALL_READ, user_id)
    else:
        status = await conn.execute(MARK_READ, user_id, ids)
    return int(status.rsplit(" ", 1)[-1])


MARK_COLLAPSED_READ = """
update notification_receipts set read_at = now()
where user_id = $1 and collapse_key = $2 and read_at is null
"""


async def mark_collapsed_read(conn: Connection, user_id: str, collapse_key: str) -> int:
    """Mark the user's unread notification with `collapse_key` read; returns how many (0 or 1)."""
    status = await conn.execute(MARK_COLLAPSED_READ, user_id, collapse_key)
    return int(status.rsplit(" ", 1)[-1])


# Any constant works; it only has to be the same on every node.
_PRUNE_LOCK_KEY = 0x42C_0006
TRY_PRUNE_LOCK = "select pg_try_advisory_xact_lock($1)"
PRUNE_BATCH = """
delete from notifications where id in (
    select id from notifications where created_at < $1 order by id limit $2
)
"""


async def prune_batch(conn: Connection, cutoff: datetime, batch: int) -> int | None:
    """Delete up to `batch` notifications older than `cutoff` (receipts cascade).

    Returns how many went, or None when another node is pruning right now.
    """
    if not await conn.fetchval(TRY_PRUNE_LOCK, _PRUNE_LOCK_KEY):
        return None
    status = await conn.execute(PRUNE_BATCH, cutoff, batch)
    return int(status.rsplit(" ", 1)[-1])


SELECT_UNREAD_AMONG = """
select n.id, n.type, n.title, n.body, n.data, n.collapse_key, n.created_at, false as read
from notification_receipts r join notifications n on n.id = r.notification_id
where r.user_id = $1 and r.notification_id = any($2::bigint[]) and r.read_at is null
order by n.id
"""


async def unread_among(
    conn: Connection, user_id: str, notification_ids: list[int]
) -> dict[int, ReceivedNotification]:
    """Which of these notifications the user still has unread, by id."""
    rows = await conn.fetch(SELECT_UNREAD_AMONG, user_id, notification_ids)
    return {
        row["id"]: ReceivedNotification(
            id=row["id"],
            type=row["type"],
            title=row["title"],
            body=row["body"],
            data=_data(row["data"]),
            collapse_key=row["collapse_key"],
            created_at=row["created_at"],
            read=False,
        )
        for row in rows
    }
