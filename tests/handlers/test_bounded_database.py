"""Database use stays bounded: replies during a big paid broadcast never take the whole pool,
and a wait for a connection ends in `unavailable` (nothing stored) rather than in a stall."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg

from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import node, sent
from tests.relations import subscribe

SUBSCRIBERS = 2000  # as many as stays fast on a shared 2-core machine (the issue says 10,000)
REPLIERS = 12
POOL = 6


async def _bulk_subscribers(database_url: str, creator_id: str, count: int) -> None:
    """`count` subscribers written straight into Postgres (registering 2,000 users through
    the API would spend minutes hashing passwords); they only receive the broadcast."""
    conn = await asyncpg.connect(database_url)
    try:
        ids = [f"bulk-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"{u}@example.invalid", u, "fan") for u in ids],
            columns=["id", "email", "display_name", "role"],
        )
        await conn.copy_records_to_table(
            "subscriptions",
            records=[(u, creator_id, "active") for u in ids],
            columns=["fan_id", "creator_id", "status"],
        )
    finally:
        await conn.close()


async def _stored(database_url: str, sender_id: str, client_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "select count(*) from messages where sender_id = $1 and client_id = $2",
            sender_id,
            client_id,
        )
        return count
    finally:
        await conn.close()


class _Once(logging.Handler):
    """Sets `event` when a record containing `text` is logged."""

    def __init__(self, text: str, event: asyncio.Event) -> None:
        super().__init__()
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def _reply(chat: Any, conversation_id: str, client_id: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    ack = await chat.call(
        "message:send",
        {"conversation_id": conversation_id, "client_id": client_id, "body": "hi!"},
        timeout=30,
    )
    return ack, time.monotonic() - started


async def test_replies_during_a_big_paid_broadcast_never_exhaust_the_pool(
    settings: Settings,
) -> None:
    async with node(
        settings,
        db_pool_min_size=POOL,
        db_pool_max_size=POOL,
        message_rate_limit="100000/1s",
        socket_event_rate_limit="100000/1s",
    ) as n:
        creator = await n.api.register("creator")
        fans = [await n.api.register() for _ in range(REPLIERS)]
        for fan in fans:
            await subscribe(settings.database_url, fan.id, creator.id)
        await _bulk_subscribers(settings.database_url, creator.id, SUBSCRIBERS)
        chats = [await n.sockets.connect("/chat", fan) for fan in fans]
        dms = []
        for chat in chats:
            ack = await chat.call("conversation:open", {"participant_ids": [creator.id]})
            assert ack["ok"], ack
            dms.append(ack["data"]["id"])
        studio = await n.sockets.connect("/ppv", creator)
        rt = n.server.app[RUNTIME]
        appender = rt.appender
        statement_timeout = settings.db_statement_timeout_ms / 1000
        alone_limit = int(POOL * settings.db_write_alone_share)

        # The broadcast locks every subscriber's conversation with the creator while it writes
        # their copies; fans reply into those conversations all the while, in waves.
        broadcast = asyncio.create_task(
            studio.call(
                "ppv:broadcast",
                {"client_id": "big", "body": "new set", "price_cents": 500},
                timeout=60,
            )
        )
        replies: list[tuple[dict[str, Any], float]] = []
        free_during: list[int] = []
        wave = 0
        while not broadcast.done() or wave < 2:
            replies += await asyncio.gather(
                *(
                    _reply(chat, dm, f"r{wave}-{i}")
                    for i, (chat, dm) in enumerate(zip(chats, dms, strict=True))
                )
            )
            # Other work still finds a connection: the pool is never all lone writes.
            async with asyncio.timeout(settings.db_acquire_timeout_seconds + 1):
                async with rt.db.connection() as conn:
                    free_during.append(await conn.fetchval("select 1"))
            wave += 1
        done = await broadcast
        assert done["ok"], done
        assert done["data"]["recipients"] == SUBSCRIBERS + REPLIERS

        assert all(ack["ok"] for ack, _ in replies), [a for a, _ in replies if not a["ok"]]
        slowest = max(seconds for _, seconds in replies)
        assert slowest < statement_timeout, slowest
        assert free_during == [1] * wave
        assert appender is not None
        assert appender.busy > 0  # replies did meet the broadcast's locks
        assert appender.alone_peak <= alone_limit, appender.alone_peak
        assert rt.db.acquire_timeouts == 0


async def test_no_free_connection_answers_unavailable_and_stores_nothing(
    settings: Settings,
) -> None:
    async with node(
        settings, db_pool_min_size=2, db_pool_max_size=2, db_acquire_timeout_seconds=0.3
    ) as n:
        a, b = await n.api.register(), await n.api.register()
        chat = await n.sockets.connect("/chat", a)
        opened = await chat.call("conversation:open", {"participant_ids": [b.id]})
        dm = opened["data"]["id"]
        db = n.server.app[RUNTIME].db
        held = [await db.pool.acquire() for _ in range(2)]  # something else holds the pool
        try:
            started = time.monotonic()
            ack = await chat.call(
                "message:send", {"conversation_id": dm, "client_id": "c-1", "body": "hello"}
            )
            waited = time.monotonic() - started
        finally:
            for conn in held:
                await db.pool.release(conn)
        assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
        assert waited < 0.3 + 1.0, waited  # the acquire timeout, not the statement timeout
        assert await _stored(settings.database_url, a.id, "c-1") == 0
        # Resent with the same client_id once a connection is free: stored once.
        again = sent(
            await chat.call(
                "message:send", {"conversation_id": dm, "client_id": "c-1", "body": "hello"}
            )
        )
        assert again["body"] == "hello"
        assert await _stored(settings.database_url, a.id, "c-1") == 1


async def test_a_broadcast_whose_copies_fail_after_commit_is_retried_not_answered_unavailable(
    settings: Settings,
) -> None:
    retried = asyncio.Event()
    watcher = _Once("retrying", retried)
    logging.getLogger("backchannel.domain.broadcasts").addHandler(watcher)
    async with node(settings, db_statement_timeout_ms=400) as n:
        creator, fan = await n.api.register("creator"), await n.api.register()
        await subscribe(settings.database_url, fan.id, creator.id)
        chat = await n.sockets.connect("/chat", fan)
        opened = await chat.call("conversation:open", {"participant_ids": [creator.id]})
        dm = opened["data"]["id"]
        studio = await n.sockets.connect("/ppv", creator)
        # Another session holds the fan's conversation: the copy's write waits past the
        # statement timeout, after the broadcast itself has committed.
        locker = await asyncpg.connect(settings.database_url)
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("select 1 from conversations where id = $1 for update", int(dm))
            broadcast = asyncio.create_task(
                studio.call(
                    "ppv:broadcast",
                    {"client_id": "b-1", "body": "set", "price_cents": 500},
                    timeout=20,
                )
            )
            await asyncio.wait_for(retried.wait(), 5)  # the first attempt failed...
            await lock.rollback()  # ... and the database is fine again
        finally:
            await locker.close()
            logging.getLogger("backchannel.domain.broadcasts").removeHandler(watcher)
        ack = await broadcast
        assert ack["ok"], ack
        assert ack["data"]["recipients"] == 1
