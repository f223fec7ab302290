"""Banned users: refused at every login, refresh, request and connect until lifted or expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class Ban:
    """A ban in force (or just lifted)."""

    user_id: str
    reason: str
    until: datetime | None
    banned_by: str | None
    created_at: datetime


_COLUMNS = "user_id, reason, until, banned_by, created_at"

UPSERT_BAN = f"""
insert into user_bans (user_id, reason, until, banned_by) values ($1, $2, $3, $4)
on conflict (user_id) do update
    set reason = excluded.reason, until = excluded.until, banned_by = excluded.banned_by,
        created_at = now()
returning {_COLUMNS}
"""


async def upsert_ban(
    conn: Connection, user_id: str, reason: str, until: datetime | None, banned_by: str
) -> Ban:
    """Ban a user (again: the new reason and end replace the old)."""
    row = await conn.fetchrow(UPSERT_BAN, user_id, reason, until, banned_by)
    assert row is not None
    return Ban(**dict(row.items()))


DELETE_BAN = f"delete from user_bans where user_id = $1 returning {_COLUMNS}"


async def delete_ban(conn: Connection, user_id: str) -> Ban | None:
    """Lift a ban; None when there was none."""
    row = await conn.fetchrow(DELETE_BAN, user_id)
    return Ban(**dict(row.items())) if row else None


SELECT_ACTIVE = f"""
select {_COLUMNS} from user_bans where user_id = $1 and (until is null or until > now())
"""


async def active_ban(conn: Connection, user_id: str) -> Ban | None:
    """The ban in force on `user_id`, if any."""
    row = await conn.fetchrow(SELECT_ACTIVE, user_id)
    return Ban(**dict(row.items())) if row else None
