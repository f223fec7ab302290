"""Digests: each recipient's open digest notification for a publisher's key, until its window
ends (`/publish` with `digest: {key, window_s}`)."""

from __future__ import annotations

import json
from typing import Any

from backchannel.persistence.database import Connection
from backchannel.persistence.notifications import StoredNotification, stored_from_row

# Open: the window has not ended and the recipient has not read it (a read digest is done).
SELECT_OPEN = """
select d.notification_id from notification_digests d
join notification_receipts r
    on r.user_id = d.user_id and r.notification_id = d.notification_id and r.read_at is null
where d.user_id = $1 and d.publisher = $2 and d.digest_key = $3 and d.window_ends_at > now()
for update of d
"""


async def open_digest(conn: Connection, user_id: str, publisher: str, key: str) -> int | None:
    """The id of the user's open digest notification for this key, locked; None if none."""
    value: int | None = await conn.fetchval(SELECT_OPEN, user_id, publisher, key)
    return value


# The newest item's title and body; the items list keeps the newest `$5` items.
APPEND_ITEM = """
update notifications set title = $2, body = $3, data = jsonb_build_object(
    'digest_key', data->'digest_key',
    'count', coalesce((data->>'count')::int, 0) + 1,
    'items', (
        select coalesce(jsonb_agg(item order by ord), '[]'::jsonb) from (
            select item, ord from jsonb_array_elements(
                coalesce(data->'items', '[]'::jsonb) || jsonb_build_array($4::text::jsonb)
            ) with ordinality as items (item, ord)
            order by ord desc limit $5
        ) as newest
    )
)
where id = $1
returning id, type, title, body, data, collapse_key, created_at, recipients, skipped
"""


async def append_item(
    conn: Connection,
    notification_id: int,
    title: str,
    body: str | None,
    item: dict[str, Any],
    keep_items: int,
) -> StoredNotification:
    """Add an item to a digest notification (count + 1, items capped at `keep_items`)."""
    row = await conn.fetchrow(
        APPEND_ITEM, notification_id, title, body, json.dumps(item), keep_items
    )
    assert row is not None
    return stored_from_row(row)


# A window that ended is replaced; an open one another transaction just committed is kept
# (then this notification simply stands alone).
UPSERT_DIGEST = """
insert into notification_digests (user_id, publisher, digest_key, notification_id, window_ends_at)
values ($1, $2, $3, $4, now() + make_interval(secs => $5))
on conflict (user_id, publisher, digest_key) do update set
    notification_id = excluded.notification_id, window_ends_at = excluded.window_ends_at
where notification_digests.window_ends_at <= now()
"""


async def start_digest(
    conn: Connection,
    user_id: str,
    publisher: str,
    key: str,
    notification_id: int,
    window_seconds: float,
) -> None:
    """Open a digest window for the user with this notification."""
    await conn.execute(UPSERT_DIGEST, user_id, publisher, key, notification_id, window_seconds)
