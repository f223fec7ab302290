"""Notification preferences: the types each user has muted (stored, but not pushed live)."""

from __future__ import annotations

from backchannel.persistence.database import Connection

SELECT_MUTED_AMONG = """
select user_id from notification_preferences
where user_id = any($1::text[]) and $2 = any(muted_types)
"""


async def muted_among(conn: Connection, user_ids: list[str], type: str) -> set[str]:
    """Which of `user_ids` have muted notifications of `type`."""
    rows = await conn.fetch(SELECT_MUTED_AMONG, user_ids, type)
    return {row["user_id"] for row in rows}


SELECT_MUTED_TYPES = "select muted_types from notification_preferences where user_id = $1"


async def get_muted_types(conn: Connection, user_id: str) -> list[str]:
    """The notification types the user has muted."""
    value = await conn.fetchval(SELECT_MUTED_TYPES, user_id)
    return list(value) if value else []


UPSERT_MUTED_TYPES = """
insert into notification_preferences (user_id, muted_types) values ($1, $2::text[])
on conflict (user_id) do update set muted_types = excluded.muted_types, updated_at = now()
returning muted_types
"""


async def set_muted_types(conn: Connection, user_id: str, types: list[str]) -> list[str]:
    """Replace the user's muted types."""
    value = await conn.fetchval(UPSERT_MUTED_TYPES, user_id, types)
    return list(value)
