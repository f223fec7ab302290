"""Server API keys: what other backends present to `POST /publish` (and name on the stream)."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

from backchannel.errors import Conflict, Invalid, NotFound, Unauthorized
from backchannel.persistence import api_keys
from backchannel.persistence.api_keys import ApiKey

if TYPE_CHECKING:
    from backchannel.persistence.database import Database

KEY_PREFIX = "bck_"
# Publishers that are not keys: the server itself and the trusted stream (dedupe scopes).
RESERVED_NAMES = frozenset({"backchannel", "stream"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def hash_key(key: str) -> bytes:
    """The stored form of a key: keys are 256 random bits, so a plain SHA-256 suffices."""
    return hashlib.sha256(key.encode()).digest()


def check_name(name: str) -> str:
    """A key name: 1 to 64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit."""
    if name.lower() in RESERVED_NAMES:
        raise Invalid(
            "reserved key name",
            [{"field": "name", "message": f"{name!r} names a built-in publisher"}],
        )
    if not _NAME.match(name):
        raise Invalid(
            "invalid key name",
            [{"field": "name", "message": "1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -"}],
        )
    return name


async def create_key(db: Database, name: str) -> tuple[ApiKey, str]:
    """Make a key; returns it with the secret, which is never stored and never shown again."""
    check_name(name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        async with db.transaction() as conn:
            key = await api_keys.insert_key(conn, name, hash_key(secret), secret[:10])
    except Conflict as exc:
        raise Conflict(f"a live key named {name!r} exists; revoke it first") from exc
    return key, secret


async def list_keys(db: Database) -> list[ApiKey]:
    """Every key, revoked ones included."""
    async with db.connection() as conn:
        return await api_keys.list_keys(conn)


async def revoke_key(db: Database, name: str) -> ApiKey:
    """Revoke the live key with this name: it stops working at once."""
    async with db.transaction() as conn:
        key = await api_keys.revoke_key(conn, name)
    if key is None:
        raise NotFound(f"no live key named {name!r}")
    return key


async def authenticate_key(db: Database, secret: str | None) -> ApiKey:
    """The live key behind a presented secret; `unauthorized` otherwise."""
    if not secret:
        raise Unauthorized("an API key is required (Authorization: Bearer <api key>)")
    async with db.transaction() as conn:
        key = await api_keys.get_live_by_hash(conn, hash_key(secret))
        if key is not None:
            await api_keys.touch_key(conn, key.id)
    if key is None:
        raise Unauthorized("API key is not valid or has been revoked")
    return key


async def key_by_name(db: Database, name: str) -> ApiKey | None:
    """The live key with this name, for stream entries that act as it."""
    async with db.connection() as conn:
        return await api_keys.get_live_by_name(conn, name)
