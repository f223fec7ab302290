"""Login sessions you can see and end: logout, logout everywhere, end one by id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from backchannel.domain.auth import Identity, session_of_refresh_token
from backchannel.errors import NotFound
from backchannel.persistence import audit, sessions, users
from backchannel.persistence.database import Connection

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class SessionView(BaseModel):
    """One live session of the caller (`GET /auth/sessions`)."""

    id: str
    profile_id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionList(BaseModel):
    """The caller's live sessions, newest first."""

    items: list[SessionView]
    next_cursor: str | None = None


async def end_sessions(
    rt: Runtime,
    user_id: str,
    session_ids: list[uuid.UUID] | None,
    reason: str,
    *,
    actor_id: str | None = None,
    ip: str | None = None,
    account_id: str | None = None,
) -> list[str]:
    """End sessions of `user_id`, or of every profile of `account_id` (all when None):
    refresh tokens revoked, access tokens refused from now on, sockets on every node told
    `session:ended` and disconnected."""
    async with rt.db.transaction() as conn:
        owners = await _owners(conn, user_id, account_id)
        ended = await sessions.end_sessions(conn, owners, session_ids, reason)
        for session_id in ended:
            await audit.audit(
                conn,
                "session.ended",
                actor_id=actor_id or user_id,
                target_id=user_id,
                ip=ip,
                details={"session_id": str(session_id), "reason": reason},
            )
    ids = [str(session_id) for session_id in ended]
    await rt.revocations.ended(ids, reason)
    return ids


async def logout(
    rt: Runtime, refresh_token: str | None, identity: Identity | None, ip: str | None
) -> None:
    """End the session of this refresh token, else of the bearer token; unknown is ignored."""
    target: tuple[str, uuid.UUID] | None = None
    if refresh_token is not None:
        target = await session_of_refresh_token(rt, refresh_token)
    elif identity is not None and identity.session_id is not None:
        target = (identity.user_id, _parse(identity.session_id))
    if target is not None:
        await end_sessions(rt, target[0], [target[1]], "logout", ip=ip)


async def _owners(conn: Connection, user_id: str, account_id: str | None) -> list[str]:
    if not account_id:
        return [user_id]
    return await users.account_profile_ids(conn, account_id) or [user_id]


async def logout_all(rt: Runtime, identity: Identity, ip: str | None) -> list[str]:
    """End every session of the caller's account (every profile), this one included."""
    return await end_sessions(
        rt, identity.user_id, None, "logout", ip=ip, account_id=identity.account_id
    )


async def list_sessions(rt: Runtime, identity: Identity) -> SessionList:
    """The live sessions of the caller's account; `current` marks the one of this token."""
    async with rt.db.connection() as conn:
        owners = await _owners(conn, identity.user_id, identity.account_id)
        stored = await sessions.live_sessions(conn, owners)
    return SessionList(
        items=[
            SessionView(
                id=str(s.id),
                profile_id=s.user_id,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                user_agent=s.user_agent,
                ip=s.ip,
                current=str(s.id) == identity.session_id,
            )
            for s in stored
        ]
    )


async def end_one(rt: Runtime, identity: Identity, session_id: str, ip: str | None) -> None:
    """End one of the caller's sessions; another user's (or an unknown one) is `not_found`."""
    ended = await end_sessions(
        rt, identity.user_id, [_parse(session_id)], "logout", ip=ip, account_id=identity.account_id
    )
    if not ended:
        raise NotFound("no such session")


def _parse(session_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(session_id)
    except ValueError:
        raise NotFound("no such session") from None


async def recently_ended(rt: Runtime, seconds: float) -> list[str]:
    """Sessions ended within `seconds` (their access tokens may not have expired yet)."""
    async with rt.db.connection() as conn:
        return [str(sid) for sid in await sessions.ended_since(conn, seconds)]
