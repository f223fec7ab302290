"""Migrations apply in order, once, even when two nodes start together."""

from __future__ import annotations

import asyncio

import asyncpg

from backchannel.persistence.migrations import load_migrations, migrate
from tests.services import RunServices


def test_migrations_are_numbered_in_order_once_each() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(set(versions)) and versions[:2] == [1, 2]


async def test_two_nodes_migrating_together_apply_each_file_once(services: RunServices) -> None:
    # The run's database is already migrated: both find nothing to do, and neither fails.
    results = await asyncio.gather(migrate(services.database_url), migrate(services.database_url))
    assert results == [[], []]
    conn = await asyncpg.connect(services.database_url)
    try:
        rows = await conn.fetch("select version from schema_migrations order by version")
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [m.version for m in load_migrations()]


async def test_a_fresh_database_is_migrated_by_concurrent_nodes(services: RunServices) -> None:
    admin = await asyncpg.connect(services.database_url)
    name = "bc_fresh_migrate_test"
    await admin.execute(f'drop database if exists "{name}" with (force)')
    await admin.execute(f'create database "{name}"')
    try:
        url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
        first, second = await asyncio.gather(migrate(url), migrate(url))
        assert sorted(first + second) == sorted(
            f"{m.version:04d}_{m.name}" for m in load_migrations()
        )
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
