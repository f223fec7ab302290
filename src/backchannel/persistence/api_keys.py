"""Server API keys: stored as SHA-256 hashes, never as the key itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class ApiKey:
    """One key as an operator sees it (never the key itself)."""

    id: int
    name: str
    key_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = "id, name, key_prefix, created_at, last_used_at, revoked_at"


def _key(row: Any) -> ApiKey:
    return ApiKey(**{name: row[name] for name in _COLUMNS.split(", ")})


INSERT_KEY = f"""
insert into api_keys (name, key_hash, key_prefix) values ($1, $2, $3)
returning {_COLUMNS}
"""


async def insert_key(conn: Connection, name: str, key_hash: bytes, key_prefix: str) -> ApiKey:
    """Store a new key; a live key with this name raises `Conflict` at the unit of work."""
    return _key(await conn.fetchrow(INSERT_KEY, name, key_hash, key_prefix))


SELECT_KEYS = f"select {_COLUMNS} from api_keys order by name, id"


async def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key, revoked ones included."""
    return [_key(row) for row in await conn.fetch(SELECT_KEYS)]


REVOKE_KEY = f"""
update api_keys set revoked_at = now() where name = $1 and revoked_at is null
returning {_COLUMNS}
"""


async def revoke_key(conn: Connection, name: str) -> ApiKey | None:
    """Revoke the live key with this name; None when there is none."""
    row = await conn.fetchrow(REVOKE_KEY, name)
    return _key(row) if row else None


SELECT_LIVE_BY_HASH = f"select {_COLUMNS} from api_keys where key_hash = $1 and revoked_at is null"


async def get_live_by_hash(conn: Connection, key_hash: bytes) -> ApiKey | None:
    """The unrevoked key with this hash."""
    row = await conn.fetchrow(SELECT_LIVE_BY_HASH, key_hash)
    return _key(row) if row else None


SELECT_LIVE_BY_NAME = f"select {_COLUMNS} from api_keys where name = $1 and revoked_at is null"


async def get_live_by_name(conn: Connection, name: str) -> ApiKey | None:
    """The unrevoked key with this name (stream entries act as a key by name)."""
    row = await conn.fetchrow(SELECT_LIVE_BY_NAME, name)
    return _key(row) if row else None


# Recording every use would turn each publish into a write; once a minute is enough to tell.
TOUCH_KEY = """
update api_keys set last_used_at = now()
where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')
"""


async def touch_key(conn: Connection, key_id: int) -> None:
    """Note that a key was used (at most once a minute)."""
    await conn.execute(TOUCH_KEY, key_id)
