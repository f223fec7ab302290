"""Numbered plain-SQL migrations, applied in order, each in a transaction, under a lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same on every node.
_MIGRATION_LOCK_KEY = 0x42C_0001

_CREATE_TABLE = """
create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    applied_at timestamptz not null default now()
)
"""
_APPLIED = "select version from schema_migrations"
_RECORD = "insert into schema_migrations (version, name) values ($1, $2)"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("backchannel.persistence.schema").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe when nodes start together."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        # A session lock, so a second node waits here and then finds nothing left to do.
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            done = {row["version"] for row in await conn.fetch(_APPLIED)}
            for migration in load_migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(_RECORD, migration.version, migration.name)
                applied_now.append(f"{migration.version:04d}_{migration.name}")
                log.info("migration applied", extra={"migration": applied_now[-1]})
        finally:
            await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return applied_now
