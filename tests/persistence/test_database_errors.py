"""`unavailable` means nothing was stored, and only then (issue #13, item 9).

A connection that breaks before commit (Postgres stopping: the backend terminated, or asyncpg's
`InternalClientError` "cannot switch to state") is `unavailable`; one that breaks during the
COMMIT leaves the outcome unknown and is never reported as `unavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from backchannel.errors import ErrorCode, Internal, Unavailable
from backchannel.persistence import outbox
from backchannel.persistence.database import Database, open_database
from tests.nodes import eventually
from tests.services import RunServices


@pytest.fixture
async def db(services: RunServices) -> AsyncIterator[Database]:
    """A pool of this run's database, as the server opens it."""
    database = await open_database(
        services.database_url, min_size=1, max_size=2, statement_timeout_ms=5000
    )
    yield database
    await database.close()


async def _stored(services: RunServices) -> int:
    conn = await asyncpg.connect(services.database_url)
    try:
        return int(await conn.fetchval("select count(*) from outbox"))
    finally:
        await conn.close()


async def _terminate(services: RunServices, pid: int) -> None:
    """Postgres ends this backend, as a Postgres stop or restart does."""
    conn = await asyncpg.connect(services.database_url)
    try:
        assert await conn.fetchval("select pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_connection_broken_before_commit_is_unavailable_and_nothing_is_stored(
    db: Database, services: RunServices
) -> None:
    with pytest.raises(Unavailable):
        async with db.transaction() as conn:
            await outbox.add(conn, "emit_user", ["/ppv"], "u1", "wallet:balance", {})
            await _terminate(services, conn.get_server_pid())
            await conn.fetchval("select 1")
    assert await _stored(services) == 0


async def test_asyncpgs_cannot_switch_to_state_is_unavailable_and_nothing_is_stored(
    db: Database, services: RunServices
) -> None:
    with pytest.raises(Unavailable) as raised:
        async with db.transaction() as conn:
            await outbox.add(conn, "emit_user", ["/ppv"], "u1", "wallet:balance", {})
            # What asyncpg raises when Postgres goes away while the protocol is mid-operation.
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
    assert raised.value.code is ErrorCode.UNAVAILABLE
    assert await _stored(services) == 0


async def test_a_connection_broken_during_commit_is_never_reported_unavailable(
    db: Database, services: RunServices
) -> None:
    async def terminate_while_committing(pid: int) -> None:
        conn = await asyncpg.connect(services.database_url)
        try:
            await eventually(
                lambda: conn.fetchval(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where pid = $1 and wait_event = 'PgSleep' and query = 'COMMIT;'",
                    pid,
                ),
                interval=0.01,
                what="the COMMIT in flight",
            )
        finally:
            await conn.close()

    killer: asyncio.Task[None] | None = None
    with pytest.raises(Internal) as raised:
        async with db.transaction() as conn:
            # A deferred constraint trigger that takes its time: the COMMIT is in flight when
            # Postgres goes away, so nobody can tell whether it landed.
            await conn.execute(
                "create function pg_temp.slow() returns trigger language plpgsql as"
                " $$ begin perform pg_sleep(4); return null; end $$;"
                " create temp table slow_commit (x int) on commit drop;"
                " create constraint trigger slow after insert on slow_commit"
                " deferrable initially deferred for each row execute function pg_temp.slow()"
            )
            await conn.execute("insert into slow_commit values (1)")
            killer = asyncio.create_task(terminate_while_committing(conn.get_server_pid()))
    assert killer is not None
    await asyncio.wait_for(killer, 5)
    assert not isinstance(raised.value, Unavailable)
    assert "may be stored" in raised.value.message
