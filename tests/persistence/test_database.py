"""The unit of work against a real Postgres whose backends are killed under load."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from backchannel.errors import Internal, Unavailable
from backchannel.outage_log import OUTAGES
from backchannel.persistence.database import Database
from tests.outages import TcpProxy
from tests.services import RunServices

KILLS = 15


async def test_backends_killed_under_load_answer_unavailable_never_an_internal_error(
    services: RunServices,
) -> None:
    # asyncpg reports a connection killed mid-transaction in three ways: the statement's
    # ConnectionDoesNotExistError, an InternalClientError ("cannot switch to state …") on the
    # next call, or an InterfaceError from the commit on a closed connection. Before COMMIT
    # was sent none of them committed anything: each is `unavailable` (the client resends),
    # never a bare `internal`. Killed while COMMIT is in flight, the outcome is unknown: that
    # one answer is `internal` saying the change may be stored (the client's retry with the
    # same client_id finds out).
    name = f"bc-kill-{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(
        services.database_url, min_size=3, max_size=3, server_settings={"application_name": name}
    )
    db = Database(pool)
    admin = await asyncpg.connect(services.database_url)
    table = f"probe_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"create table {table} (token text primary key)")
    seen: Counter[str] = Counter()
    committed: list[str] = []
    refused: list[str] = []
    stop = asyncio.Event()

    async def work() -> None:
        while not stop.is_set():
            token = uuid.uuid4().hex
            try:
                async with db.transaction() as conn:
                    await conn.execute(f"insert into {table} values ($1)", token)
                    await conn.fetchrow("select pg_sleep(0.005)")
                seen["committed"] += 1
                committed.append(token)
            except Unavailable:
                seen["unavailable"] += 1
                refused.append(token)
            except Internal as exc:
                assert "may be stored" in str(exc), exc
                seen["commit outcome unknown"] += 1
            except Exception as exc:
                seen[f"{type(exc).__name__}: {exc}"[:120]] += 1

    async def kill() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(0.02)
            await admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where application_name = $1",
                name,
            )
        stop.set()

    try:
        await asyncio.wait_for(asyncio.gather(kill(), *(work() for _ in range(6))), 60)
        stored = {row["token"] for row in await admin.fetch(f"select token from {table}")}
    finally:
        await admin.execute(f"drop table {table}")
        await admin.close()
        await pool.close()
    assert set(seen) <= {"committed", "unavailable", "commit outcome unknown"}, seen
    assert seen["unavailable"] > 0 and seen["committed"] > 0, seen
    # What answered success is stored (a connection dying after the commit changes nothing).
    assert set(committed) <= stored
    # What answered `unavailable` is not: "nothing was stored" holds.
    assert not set(refused) & stored


async def test_an_outage_is_logged_when_it_starts_and_ends_not_once_per_request(
    services: RunServices, caplog: pytest.LogCaptureFixture
) -> None:
    parsed = urlparse(services.database_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    via_proxy = urlunparse(parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}"))
    pool = await asyncpg.create_pool(via_proxy, min_size=1, max_size=2, timeout=2)
    db = Database(pool)
    try:
        OUTAGES.recovered("postgres")  # whatever an earlier test left open
        caplog.clear()
        await proxy.cut()
        with caplog.at_level(logging.WARNING, logger="backchannel.outages"):
            for _ in range(50):
                with pytest.raises(Unavailable):
                    async with db.connection() as conn:
                        await conn.fetchval("select 1")
            await proxy.restore()
            async with db.transaction() as conn:
                assert await conn.fetchval("select 1") == 1
            async with db.connection() as conn:
                assert await conn.fetchval("select 1") == 1
    finally:
        await pool.close()
        await proxy.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "backchannel.outages"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("postgres unavailable: ")
    assert lines[1].startswith("postgres available again after ")
    assert "(49 failures not logged one by one)" in lines[1]
