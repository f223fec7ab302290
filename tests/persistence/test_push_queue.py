"""The push queue's SQL against real Postgres: who gets a row, disjoint claims, leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from backchannel.persistence import push_queue
from tests.nodes import eventually
from tests.services import RunServices

SETUP = """
insert into users (id, display_name) select 'u' || g, 'U' || g from generate_series(1, 4) g;
insert into devices (user_id, platform, token) values
    ('u1', 'apns', 'a1'), ('u1', 'fcm', 'f1'), ('u2', 'fcm', 'f2');
insert into notifications (type, title, publisher) values ('news', 'Hi', 'backchannel');
"""


@pytest.fixture
async def conn(services: RunServices) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(services.database_url)
    try:
        await connection.execute(SETUP)
        yield connection
    finally:
        await connection.close()


async def notification_id(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("select id from notifications")
    return value


async def test_only_recipients_with_a_device_get_one_row_each(conn: asyncpg.Connection) -> None:
    queued = await push_queue.enqueue(conn, await notification_id(conn), ["u1", "u2", "u3"])
    assert queued == 2
    rows = await conn.fetch("select user_id from push_queue order by user_id")
    assert [r["user_id"] for r in rows] == ["u1", "u2"]
    assert await push_queue.enqueue(conn, await notification_id(conn), ["u3", "u4"]) == 0


async def test_two_nodes_claiming_at_once_get_disjoint_rows(
    conn: asyncpg.Connection, services: RunServices
) -> None:
    nid = await notification_id(conn)
    for _ in range(10):
        await push_queue.enqueue(conn, nid, ["u1", "u2"])
    a = await asyncpg.connect(services.database_url)
    b = await asyncpg.connect(services.database_url)
    try:
        async with a.transaction(), b.transaction():
            first, second = await asyncio.gather(
                push_queue.claim_due(a, 12, 60.0), push_queue.claim_due(b, 12, 60.0)
            )
        claimed = [row.id for row in first] + [row.id for row in second]
        assert len(claimed) == len(set(claimed)) == 20
        # Held by their leases: nobody else gets them now.
        async with a.transaction():
            assert await push_queue.claim_due(a, 100, 60.0) == []
    finally:
        await a.close()
        await b.close()


async def test_a_lapsed_lease_is_retaken_and_a_released_row_is_due_at_once(
    conn: asyncpg.Connection,
) -> None:
    await push_queue.enqueue(conn, await notification_id(conn), ["u2"])
    (row,) = await push_queue.claim_due(conn, 10, 0.2)
    assert await push_queue.claim_due(conn, 10, 0.2) == []

    async def retaken() -> list[push_queue.QueuedPush]:
        return await push_queue.claim_due(conn, 10, 60.0)

    (again,) = await eventually(retaken, timeout=5.0, what="lease lapsed")
    assert again.id == row.id
    await push_queue.release(conn, [row.id])
    (third,) = await push_queue.claim_due(conn, 10, 60.0)
    assert third.id == row.id


async def test_retry_hold_and_the_backlog(conn: asyncpg.Connection) -> None:
    nid = await notification_id(conn)
    await push_queue.enqueue(conn, nid, ["u1", "u2"])
    first, second = await push_queue.claim_due(conn, 10, 60.0)
    await push_queue.retry(conn, [first.id], [42], 3600.0, "apns: 503")
    await push_queue.hold(conn, [second.id], await conn.fetchval("select now() + interval '1h'"))
    assert await push_queue.claim_due(conn, 10, 60.0) == []
    pending, held, oldest = await push_queue.backlog(conn)
    assert (pending, held, oldest) == (1, 1, 0.0)  # the retry is not due yet
    (retried,) = await conn.fetch("select attempts, device_ids from push_queue where not held")
    assert retried["attempts"] == 1 and list(retried["device_ids"]) == [42]
    # Quiet hours changed: held rows are due now, and a summary claims all of them.
    assert await push_queue.release_held(conn, second.user_id) == 1
    (held_row,) = await push_queue.claim_held(conn, second.user_id, 60.0)
    assert held_row.id == second.id and held_row.held
    remaining = await push_queue.seconds_until_next(conn)
    assert remaining is not None and 3500 < remaining <= 3600
