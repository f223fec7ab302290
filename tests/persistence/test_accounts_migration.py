"""Upgrading a database with users in it: each becomes a one-profile account, and the old
roles check gives way to the four roles."""

from __future__ import annotations

import asyncpg

from backchannel.persistence.migrations import load_migrations
from tests.services import RunServices

FIRST_ACCOUNTS_MIGRATION = 20


async def test_existing_users_become_one_profile_accounts_with_nothing_else_changed(
    services: RunServices,
) -> None:
    admin = await asyncpg.connect(services.database_url)
    name = "bc_accounts_upgrade_test"
    await admin.execute(f'drop database if exists "{name}" with (force)')
    await admin.execute(f'create database "{name}"')
    try:
        conn = await asyncpg.connect(services.database_url.rsplit("/", 1)[0] + f"/{name}")
        try:
            migrations = load_migrations()
            for migration in migrations:
                if migration.version < FIRST_ACCOUNTS_MIGRATION:
                    await conn.execute(migration.sql)
            await conn.execute(
                "insert into users (id, email, password_hash, display_name, role) values"
                " ('u1', 'one@example.com', 'hash-1', 'One', 'creator'),"
                " ('u2', null, null, 'External', 'fan')"
            )
            before = await conn.fetch("select * from users order by id")
            for migration in migrations:
                if migration.version >= FIRST_ACCOUNTS_MIGRATION:
                    await conn.execute(migration.sql)
            after = await conn.fetch("select * from users order by id")
            assert [{k: row[k] for k in dict(before[0])} for row in after] == [
                dict(row) for row in before
            ]
            accounts = {row["account_id"] for row in after}
            assert len(accounts) == 2 and None not in accounts
            assert await conn.fetchval("select count(*) from accounts") == 2
            # New users get their own account; the four roles are allowed.
            await conn.execute("insert into users (display_name, role) values ('Mod', 'moderator')")
            assert await conn.fetchval("select count(*) from accounts") == 3
        finally:
            await conn.close()
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
