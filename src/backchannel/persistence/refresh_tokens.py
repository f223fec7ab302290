"""Refresh tokens: hashed at rest, rotated on use, revoked by family on reuse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class StoredRefreshToken:
    """A refresh token row, locked for the current transaction."""

    id: int
    user_id: str
    family_id: UUID
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    user_active: bool
    expired: bool


INSERT_TOKEN = """
insert into refresh_tokens (user_id, family_id, token_hash, expires_at)
values ($1, $2, $3, now() + make_interval(days => $4))
"""


async def insert_token(
    conn: Connection, *, user_id: str, family_id: UUID, token_hash: bytes, ttl_days: int
) -> None:
    """Store a new token of a family."""
    await conn.execute(INSERT_TOKEN, user_id, family_id, token_hash, ttl_days)


SELECT_FOR_UPDATE = """
select t.id, t.user_id, t.family_id, t.expires_at, t.rotated_at, t.revoked_at,
       u.deleted_at is null as user_active, t.expires_at <= now() as expired
from refresh_tokens t join users u on u.id = t.user_id
where t.token_hash = $1
for update of t
"""


async def lock_token(conn: Connection, token_hash: bytes) -> StoredRefreshToken | None:
    """The token with this hash, locked so two concurrent refreshes cannot both rotate it."""
    row = await conn.fetchrow(SELECT_FOR_UPDATE, token_hash)
    return StoredRefreshToken(**dict(row)) if row else None


MARK_ROTATED = "update refresh_tokens set rotated_at = now() where id = $1"


async def mark_rotated(conn: Connection, token_id: int) -> None:
    """Record that this token has been exchanged."""
    await conn.execute(MARK_ROTATED, token_id)


REVOKE_FAMILY = """
update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null
"""


async def revoke_family(conn: Connection, family_id: UUID) -> None:
    """Revoke every token of a family (logout, or reuse of a rotated token)."""
    await conn.execute(REVOKE_FAMILY, family_id)


SELECT_BY_HASH = """
select t.id, t.user_id, t.family_id, t.expires_at, t.rotated_at, t.revoked_at,
       u.deleted_at is null as user_active, t.expires_at <= now() as expired
from refresh_tokens t join users u on u.id = t.user_id
where t.token_hash = $1
"""


async def find_token(conn: Connection, token_hash: bytes) -> StoredRefreshToken | None:
    """The token with this hash, unlocked (to learn its session)."""
    row = await conn.fetchrow(SELECT_BY_HASH, token_hash)
    return StoredRefreshToken(**dict(row)) if row else None
