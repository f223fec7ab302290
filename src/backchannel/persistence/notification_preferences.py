"""Notification preferences: muted types (live and push) and quiet hours."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from backchannel.persistence.database import Connection

SELECT_MUTED_AMONG = """
select user_id from notification_preferences
where user_id = any($1::text[]) and $2 = any(muted_types)
"""


async def muted_among(conn: Connection, user_ids: list[str], type: str) -> set[str]:
    """Which of `user_ids` have muted notifications of `type`."""
    rows = await conn.fetch(SELECT_MUTED_AMONG, user_ids, type)
    return {row["user_id"] for row in rows}


@dataclass(frozen=True)
class StoredPreferences:
    """Every preference of one user (defaults when they never set any)."""

    muted_types: list[str] = field(default_factory=list)
    push_muted_types: list[str] = field(default_factory=list)
    # `{start, end, time_zone}` as the API validated it, or None.
    quiet_hours: dict[str, Any] | None = None


def _preferences(row: Any) -> StoredPreferences:
    if row is None:
        return StoredPreferences()
    quiet = row["quiet_hours"]
    if isinstance(quiet, str):
        quiet = json.loads(quiet)
    return StoredPreferences(
        muted_types=list(row["muted_types"]),
        push_muted_types=list(row["push_muted_types"]),
        quiet_hours=quiet if isinstance(quiet, dict) else None,
    )


SELECT_PREFERENCES = """
select muted_types, push_muted_types, quiet_hours from notification_preferences
where user_id = $1
"""


async def get_preferences(conn: Connection, user_id: str) -> StoredPreferences:
    """The user's preferences."""
    return _preferences(await conn.fetchrow(SELECT_PREFERENCES, user_id))


UPSERT_PREFERENCES = """
insert into notification_preferences (user_id, muted_types, push_muted_types, quiet_hours)
values ($1, $2::text[], $3::text[], $4::text::jsonb)
on conflict (user_id) do update set
    muted_types = excluded.muted_types, push_muted_types = excluded.push_muted_types,
    quiet_hours = excluded.quiet_hours, updated_at = now()
returning muted_types, push_muted_types, quiet_hours
"""


async def set_preferences(
    conn: Connection, user_id: str, preferences: StoredPreferences
) -> StoredPreferences:
    """Replace every preference of the user."""
    quiet = None if preferences.quiet_hours is None else json.dumps(preferences.quiet_hours)
    row = await conn.fetchrow(
        UPSERT_PREFERENCES,
        user_id,
        preferences.muted_types,
        preferences.push_muted_types,
        quiet,
    )
    return _preferences(row)
