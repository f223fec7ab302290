"""Group commit against real Postgres: batched sends keep every guarantee of one at a time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from backchannel.errors import Conflict, Unavailable
from backchannel.persistence import messages
from backchannel.persistence.database import Database, open_database
from backchannel.persistence.message_appender import MessageAppender
from backchannel.persistence.messages import BUSY, NewMessage
from tests.processes import free_port
from tests.services import RunServices

# Three 1:1 conversations: (a, b), (a, c), (b, c); and d, who is in none.
SETUP = """
insert into users (id, display_name) values ('a', 'A'), ('b', 'B'), ('c', 'C'), ('d', 'D');
insert into conversations (kind, direct_key, created_by)
values ('direct', 'a b', 'a'), ('direct', 'a c', 'a'), ('direct', 'b c', 'b');
insert into conversation_members (conversation_id, user_id)
select id, split_part(direct_key, ' ', 1) from conversations
union all select id, split_part(direct_key, ' ', 2) from conversations;
"""


@pytest.fixture
async def conn(services: RunServices) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(services.database_url)
    await connection.execute(SETUP)
    yield connection
    await connection.close()


@pytest.fixture
async def db(services: RunServices, conn: asyncpg.Connection) -> AsyncIterator[Database]:
    database = await open_database(
        services.database_url, min_size=1, max_size=6, statement_timeout_ms=5000
    )
    yield database
    await database.close()


async def _conversation(conn: asyncpg.Connection, key: str) -> int:
    conversation_id: int = await conn.fetchval(
        "select id from conversations where direct_key = $1", key
    )
    return conversation_id


def _new(conversation_id: int, sender: str, client_id: str, body: str = "hi") -> NewMessage:
    return NewMessage(
        conversation_id=conversation_id,
        sender_id=sender,
        client_id=client_id,
        body=body,
        media=[],
        price_cents=None,
        currency="usd",
        preview_text=None,
    )


async def _seqs(conn: asyncpg.Connection, conversation_id: int) -> list[int]:
    rows = await conn.fetch(
        "select seq from messages where conversation_id = $1 order by seq", conversation_id
    )
    return [r["seq"] for r in rows]


async def test_one_batch_appends_what_one_at_a_time_would_and_refuses_the_rest(
    conn: asyncpg.Connection,
) -> None:
    ab, ac = await _conversation(conn, "a b"), await _conversation(conn, "a c")
    [first] = [await messages.append_message(conn, _new(ab, "a", "earlier"))]
    assert first is not None and first[0].seq == 1

    batch = [
        _new(ab, "b", "b1"),
        _new(ac, "a", "a1"),
        _new(ab, "d", "d1"),  # not a member
        _new(ab, "a", "earlier"),  # a retry of a stored client_id
        _new(987654, "a", "a2"),  # no such conversation
        _new(ab, "a", "a3"),
        _new(ab, "b", "b2"),
    ]
    results = await messages.try_append_messages(conn, batch)

    assert [r is None for r in results] == [False, False, True, True, True, False, False]
    stored = {r[0].client_id: r for r in results if r is not None and r is not BUSY}
    # Each conversation's new messages take the next seqs, in the order they were given.
    assert [stored[c][0].seq for c in ("b1", "a3", "b2")] == [2, 3, 4]
    assert stored["a1"][0].seq == 1
    assert stored["b1"][1] == ["a", "b"] and stored["a1"][1] == ["a", "c"]
    assert await _seqs(conn, ab) == [1, 2, 3, 4]
    last = await conn.fetch("select id, last_seq from conversations order by id")
    assert {r["id"]: r["last_seq"] for r in last}[ab] == 4
    assert {r["id"]: r["last_seq"] for r in last}[ac] == 1


async def test_concurrent_sends_are_batched_and_stay_gapless_in_every_conversation(
    conn: asyncpg.Connection, db: Database
) -> None:
    keys = {"a b": ("a", "b"), "a c": ("a", "c"), "b c": ("b", "c")}
    ids = {key: await _conversation(conn, key) for key in keys}
    rng = random.Random(7)
    plan = [rng.choice(list(keys)) for _ in range(300)]
    appender = MessageAppender(db, concurrency=3, max_batch=40)

    results = await asyncio.gather(
        *[
            appender.append(_new(ids[key], rng.choice(keys[key]), f"m{i}"))
            for i, key in enumerate(plan)
        ]
    )

    assert all(r is not None for r in results)
    assert appender.batches > 0 and appender.batched_messages > appender.batches
    for key, conversation_id in ids.items():
        assert await _seqs(conn, conversation_id) == list(range(1, plan.count(key) + 1))


async def test_one_message_postgres_refuses_fails_alone_and_the_rest_of_its_batch_lands(
    conn: asyncpg.Connection, db: Database
) -> None:
    ab = await _conversation(conn, "a b")
    appender = MessageAppender(db, concurrency=1)
    # Postgres text cannot hold NUL: the batch statement fails, then each is written alone.
    bodies = ["one", "two", "bad\x00", "four", "five"]

    results = await asyncio.gather(
        *[appender.append(_new(ab, "a", f"n{i}", body)) for i, body in enumerate(bodies)],
        return_exceptions=True,
    )

    assert isinstance(results[2], asyncpg.PostgresError)
    assert appender.batches >= 1 and appender.fallbacks == 1 and appender.busy == 0
    assert await _seqs(conn, ab) == [1, 2, 3, 4]
    bodies_stored = await conn.fetch(
        "select body from messages where conversation_id = $1 order by seq", ab
    )
    assert sorted(r["body"] for r in bodies_stored) == ["five", "four", "one", "two"]


async def test_a_locked_conversation_delays_only_its_own_messages_never_a_batch(
    conn: asyncpg.Connection, db: Database, services: RunServices
) -> None:
    ab, ac, bc = [await _conversation(conn, key) for key in ("a b", "a c", "b c")]
    assert await messages.try_append_messages(conn, [_new(ab, "a", "warm")]) != [BUSY]
    appender = MessageAppender(db, concurrency=1)
    holder = await asyncpg.connect(services.database_url)  # a paid broadcast, say
    try:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("select 1 from conversations where id = $1 for update", ab)

        waiting = asyncio.ensure_future(appender.append(_new(ab, "b", "blocked")))
        free = await asyncio.wait_for(
            asyncio.gather(
                appender.append(_new(ac, "a", "free-1")),
                appender.append(_new(bc, "b", "free-2")),
                appender.append(_new(ac, "c", "free-3")),
            ),
            5,
        )
        assert [r[0].seq for r in free if r is not None] == [1, 1, 2]
        assert not waiting.done() and appender.busy == 1
        # Alone in the queue, it is skipped the same way (the one-message statement).
        batches = appender.batches
        alone = asyncio.ensure_future(appender.append(_new(ab, "a", "alone")))
        for _ in range(3):  # it queues and starts the writer, which takes it alone
            await asyncio.sleep(0)
        # One writer: by the time a later send is answered, "alone" has been tried.
        assert await asyncio.wait_for(appender.append(_new(bc, "c", "free-4")), 5) is not None
        assert appender.busy == 2 and appender.batches == batches
        assert not waiting.done() and not alone.done()
        await locked.commit()
        stored = await asyncio.wait_for(asyncio.gather(waiting, alone), 5)
    finally:
        await holder.close()
    assert sorted(r[0].seq for r in stored if r is not None) == [2, 3]
    assert await _seqs(conn, ab) == [1, 2, 3]


async def test_the_same_client_id_twice_at_once_is_stored_once(
    conn: asyncpg.Connection, db: Database
) -> None:
    ab = await _conversation(conn, "a b")
    appender = MessageAppender(db, concurrency=2)

    results = await asyncio.gather(*[appender.append(_new(ab, "a", "same")) for _ in range(6)])

    assert sum(r is not None for r in results) == 1  # the others are retries
    assert await _seqs(conn, ab) == [1]


async def test_a_database_that_is_not_there_fails_every_waiting_send_as_unavailable(
    services: RunServices,
) -> None:
    parsed = urlparse(services.database_url)
    nowhere = urlunparse(parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{free_port()}"))
    database = await open_database(nowhere, min_size=0, max_size=2, statement_timeout_ms=1000)
    appender = MessageAppender(database, concurrency=1)
    try:
        results = await asyncio.gather(
            *[appender.append(_new(1, "a", f"x{i}")) for i in range(4)], return_exceptions=True
        )
    finally:
        await database.close()

    assert all(isinstance(r, Unavailable) for r in results)


async def test_two_nodes_racing_the_same_client_ids_store_each_once(
    conn: asyncpg.Connection, db: Database, services: RunServices
) -> None:
    ab = await _conversation(conn, "a b")
    other_db = await open_database(
        services.database_url, min_size=1, max_size=6, statement_timeout_ms=5000
    )
    here, there = MessageAppender(db, concurrency=1), MessageAppender(other_db, concurrency=1)
    holder = await asyncpg.connect(services.database_url)
    try:
        # Hold the conversation so both nodes' sends of each client_id are in flight at once.
        locked = holder.transaction()
        await locked.start()
        await holder.execute("select 1 from conversations where id = $1 for update", ab)
        sends = [
            asyncio.ensure_future(node.append(_new(ab, "a", f"r{i}")))
            for node in (here, there)
            for i in range(5)
        ]
        async with asyncio.timeout(5):
            # Polled: the appender's counters are not events.
            while here.busy + there.busy < 10:  # noqa: ASYNC110 - each send found it locked
                await asyncio.sleep(0.01)
        await locked.commit()
        results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 5)
    finally:
        await holder.close()
        await other_db.close()

    stored = [r for r in results if isinstance(r, tuple)]
    # Each client_id once; each loser is told it conflicted (the domain then replays the winner).
    assert sorted(r[0].client_id for r in stored) == [f"r{i}" for i in range(5)]
    assert all(isinstance(r, Conflict) or r is None for r in results if r not in stored)
    assert await _seqs(conn, ab) == [1, 2, 3, 4, 5]
