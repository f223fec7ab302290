"""Login sessions: one per refresh-token family, the `sid` claim of its access tokens."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from backchannel.persistence.database import Connection


class StoredSession(BaseModel):
    """A login session as `GET /auth/sessions` lists it."""

    id: UUID
    user_id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    ended_at: datetime | None
    end_reason: str | None


_COLUMNS = "id, user_id, created_at, last_used_at, user_agent, ip, ended_at, end_reason"

INSERT_SESSION = """
insert into auth_sessions (id, user_id, user_agent, ip) values ($1, $2, $3, $4)
"""


async def insert_session(
    conn: Connection, *, session_id: UUID, user_id: str, user_agent: str | None, ip: str | None
) -> None:
    """Record a new login."""
    await conn.execute(INSERT_SESSION, session_id, user_id, user_agent, ip)


TOUCH_SESSION = "update auth_sessions set last_used_at = now() where id = $1"


async def touch_session(conn: Connection, session_id: UUID) -> None:
    """The session's refresh token was just used."""
    await conn.execute(TOUCH_SESSION, session_id)


END_SESSIONS = f"""
update auth_sessions set ended_at = now(), end_reason = $3
where user_id = any($1::text[]) and (id = any($2::uuid[]) or $2 is null) and ended_at is null
returning {_COLUMNS}
"""

REVOKE_FAMILIES = """
update refresh_tokens set revoked_at = now()
where family_id = any($1::uuid[]) and revoked_at is null
"""


async def end_sessions(
    conn: Connection, user_ids: list[str], session_ids: list[UUID] | None, reason: str
) -> list[UUID]:
    """End these live sessions of any of `user_ids` (all of theirs when `session_ids` is None)
    and revoke their refresh tokens; returns the ids actually ended."""
    rows = await conn.fetch(END_SESSIONS, user_ids, session_ids, reason)
    ended = [row["id"] for row in rows]
    if ended:
        await conn.execute(REVOKE_FAMILIES, ended)
    return ended


SELECT_LIVE = f"""
select {_COLUMNS} from auth_sessions
where user_id = any($1::text[]) and ended_at is null
order by created_at desc, id
limit $2
"""


async def live_sessions(
    conn: Connection, user_ids: list[str], limit: int = 200
) -> list[StoredSession]:
    """The sessions of these users (an account's profiles) that have not ended, newest first."""
    rows = await conn.fetch(SELECT_LIVE, user_ids, limit)
    return [StoredSession.model_validate(dict(row)) for row in rows]


SELECT_ENDED_SINCE = """
select id from auth_sessions where ended_at >= now() - make_interval(secs => $1)
"""


async def ended_since(conn: Connection, seconds: float) -> list[UUID]:
    """Sessions ended within the last `seconds`: their access tokens may still be unexpired."""
    rows = await conn.fetch(SELECT_ENDED_SINCE, seconds)
    return [row["id"] for row in rows]


SELECT_ENDED = "select ended_at is not null from auth_sessions where id = $1"


async def is_ended(conn: Connection, session_id: UUID) -> bool | None:
    """True if ended, False if live, None if unknown."""
    value: bool | None = await conn.fetchval(SELECT_ENDED, session_id)
    return value
