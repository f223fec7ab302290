"""Media rows: pending uploads, processed items, and where each item has been used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class MediaRow:
    """One uploaded item as stored."""

    id: int
    owner_id: str
    status: str
    declared_type: str
    declared_size: int
    filename: str | None
    content_type: str | None
    kind: str | None
    size_bytes: int | None
    width: int | None
    height: int | None
    duration_s: float | None
    blurhash: str | None
    variants: list[str]
    failure: str | None
    upload_expires_at: datetime
    created_at: datetime
    ready_at: datetime | None
    retired_at: datetime | None


_COLUMNS = """id, owner_id, status, declared_type, declared_size, filename, content_type, kind,
size_bytes, width, height, duration_s, blurhash, variants, failure, upload_expires_at,
created_at, ready_at, retired_at"""


def _row(record: Any) -> MediaRow:
    data = dict(record.items())
    data["variants"] = list(data["variants"])
    return MediaRow(**data)


INSERT_PENDING = f"""
insert into media (owner_id, declared_type, declared_size, filename, upload_expires_at)
values ($1, $2, $3, $4, now() + make_interval(secs => $5))
returning {_COLUMNS}
"""


async def insert_pending(
    conn: Connection,
    owner_id: str,
    declared_type: str,
    declared_size: int,
    filename: str | None,
    upload_ttl_seconds: int,
) -> MediaRow:
    """A new pending upload."""
    record = await conn.fetchrow(
        INSERT_PENDING, owner_id, declared_type, declared_size, filename, upload_ttl_seconds
    )
    return _row(record)


SELECT_ONE = f"select {_COLUMNS} from media where id = $1"
SELECT_ONE_FOR_UPDATE = f"select {_COLUMNS} from media where id = $1 for update"


async def get(conn: Connection, media_id: int, *, for_update: bool = False) -> MediaRow | None:
    """One item (row-locked when `for_update`)."""
    record = await conn.fetchrow(SELECT_ONE_FOR_UPDATE if for_update else SELECT_ONE, media_id)
    return _row(record) if record else None


SELECT_MANY = f"select {_COLUMNS} from media where id = any($1::bigint[])"


async def get_many(conn: Connection, media_ids: list[int]) -> dict[int, MediaRow]:
    """Items by id."""
    return {row.id: row for row in map(_row, await conn.fetch(SELECT_MANY, media_ids))}


MARK_READY = f"""
update media set status = 'ready', content_type = $2, kind = $3, size_bytes = $4, width = $5,
    height = $6, duration_s = $7, blurhash = $8, variants = $9::text[], ready_at = now()
where id = $1 and status = 'pending'
returning {_COLUMNS}
"""


async def mark_ready(
    conn: Connection,
    media_id: int,
    *,
    content_type: str,
    kind: str,
    size_bytes: int,
    width: int | None,
    height: int | None,
    duration_s: float | None,
    blurhash: str | None,
    variants: list[str],
) -> MediaRow | None:
    """A pending item becomes ready; None if it was no longer pending."""
    record = await conn.fetchrow(
        MARK_READY,
        media_id,
        content_type,
        kind,
        size_bytes,
        width,
        height,
        duration_s,
        blurhash,
        variants,
    )
    return _row(record) if record else None


MARK_FAILED = f"""
update media set status = 'failed', failure = $2, content_type = coalesce($3, content_type)
where id = $1 and status = 'pending'
returning {_COLUMNS}
"""


async def mark_failed(
    conn: Connection, media_id: int, failure: str, content_type: str | None = None
) -> MediaRow | None:
    """A pending item failed; its objects are deleted by the caller."""
    record = await conn.fetchrow(MARK_FAILED, media_id, failure, content_type)
    return _row(record) if record else None


DELETE_ONE = "delete from media where id = $1"


async def delete(conn: Connection, media_id: int) -> None:
    """Remove the row."""
    await conn.execute(DELETE_ONE, media_id)


RETIRE = "update media set retired_at = coalesce(retired_at, now()) where id = $1"


async def retire(conn: Connection, media_id: int) -> None:
    """No new sends of this item."""
    await conn.execute(RETIRE, media_id)


def use_filter(media_id: int) -> str:
    """The JSON containment value that finds messages or content holding this media id."""
    return json.dumps([{"media_id": str(media_id)}])


SELECT_USED = """
select exists (select 1 from messages where media @> $1::jsonb)
    or exists (select 1 from content where media @> $1::jsonb)
"""


async def is_used(conn: Connection, media_id: int) -> bool:
    """Whether any message or content holds the item."""
    return bool(await conn.fetchval(SELECT_USED, use_filter(media_id)))


@dataclass(frozen=True)
class MessageUse:
    """A message holding the item, as one viewer stands toward it."""

    message_id: int
    sender_id: str
    price_cents: int | None
    currency: str
    unlocked: bool


SELECT_MESSAGE_USES = """
select m.id as message_id, m.sender_id, m.price_cents, m.currency,
    exists (select 1 from message_unlocks u where u.message_id = m.id and u.user_id = $2)
        as unlocked
from messages m
join conversation_members cm on cm.conversation_id = m.conversation_id and cm.user_id = $2
where m.media @> $1::jsonb
order by m.price_cents nulls first, m.id
limit 50
"""


async def message_uses(conn: Connection, media_id: int, viewer_id: str) -> list[MessageUse]:
    """Messages holding the item in the viewer's conversations."""
    rows = await conn.fetch(SELECT_MESSAGE_USES, use_filter(media_id), viewer_id)
    return [MessageUse(**dict(r.items())) for r in rows]


@dataclass(frozen=True)
class ContentUse:
    """Content holding the item, as one viewer stands toward it."""

    content_id: int
    creator_id: str
    visibility: str
    price_cents: int | None
    currency: str
    unlocked: bool
    subscribed: bool


SELECT_CONTENT_USES = """
select c.id as content_id, c.creator_id, c.visibility, c.price_cents, c.currency,
    exists (select 1 from content_unlocks u where u.content_id = c.id and u.user_id = $2)
        as unlocked,
    exists (select 1 from subscriptions s where s.fan_id = $2 and s.creator_id = c.creator_id
            and s.status in ('active', 'trialing')) as subscribed
from content c
where c.media @> $1::jsonb
order by c.id
limit 50
"""


async def content_uses(conn: Connection, media_id: int, viewer_id: str) -> list[ContentUse]:
    """Content holding the item."""
    rows = await conn.fetch(SELECT_CONTENT_USES, use_filter(media_id), viewer_id)
    return [ContentUse(**dict(r.items())) for r in rows]


SELECT_STALE_PENDING = f"""
select {_COLUMNS} from media
where status = 'pending' and created_at < now() - make_interval(secs => $1)
order by created_at limit $2
"""


async def stale_pending(conn: Connection, older_than_seconds: float, limit: int) -> list[MediaRow]:
    """Pending uploads nobody completed in time."""
    return [_row(r) for r in await conn.fetch(SELECT_STALE_PENDING, older_than_seconds, limit)]


SELECT_EXISTING = "select id from media where id = any($1::bigint[]) and status <> 'failed'"


async def existing_ids(conn: Connection, media_ids: list[int]) -> set[int]:
    """Which of these ids have a row whose objects must be kept."""
    return {r["id"] for r in await conn.fetch(SELECT_EXISTING, media_ids)}
