"""A paid broadcast is announced before its copies are written; nobody ever misses a copy.

The creator's `ppv:broadcast` commits one row, the subscribers hear `message:broadcast` at
once, and each subscriber's copy in their 1:1 conversation is written right after. These
stories check the window in between: a fan who reads straight away, a sender that died before
writing, and a broadcast that nobody reads at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from backchannel.domain import broadcasts as broadcast_ops
from backchannel.persistence import broadcasts
from backchannel.persistence.broadcasts import BroadcastContent
from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.services import RunServices
from tests.support import Api, Sockets, User


@asynccontextmanager
async def database(services: RunServices) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(services.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def subscribe(services: RunServices, fans: list[User], creator: User) -> None:
    """Active subscriptions, as a paid Stripe checkout leaves them (see test_subscriptions)."""
    async with database(services) as conn:
        await conn.executemany(
            "insert into subscriptions (fan_id, creator_id, status) values ($1, $2, 'active')",
            [(fan.id, creator.id) for fan in fans],
        )


async def copies(services: RunServices, broadcast_id: int | str) -> list[tuple[str, int]]:
    """(recipient, seq) of every stored copy of a broadcast."""
    async with database(services) as conn:
        rows = await conn.fetch(
            "select cm.user_id, m.seq from messages m join conversation_members cm"
            " on cm.conversation_id = m.conversation_id and cm.user_id <> m.sender_id"
            " where m.broadcast_id = $1",
            int(broadcast_id),
        )
    return sorted((row["user_id"], row["seq"]) for row in rows)


async def committed_but_never_settled(services: RunServices, creator: User, client_id: str) -> int:
    """What a node leaves behind when it dies right after a broadcast's row commits."""
    content = BroadcastContent(
        body="left behind", media=[], price_cents=300, currency="usd", preview_text="psst"
    )
    async with database(services) as conn:
        broadcast, created = await broadcasts.claim(conn, creator.id, client_id, content)
    assert created
    return broadcast.id


def conversation_with(page: dict[str, Any], creator: User) -> dict[str, Any]:
    (found,) = [c for c in page["items"] if creator.id in c["participant_ids"]]
    return found


async def test_fans_who_read_the_moment_a_broadcast_arrives_find_their_copy_exactly_once(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(6)]
    await subscribe(services, fans, creator)
    chats = [await sockets.connect("/chat", fan, events=("message:broadcast",)) for fan in fans]
    studio = await sockets.connect("/ppv", creator)

    async def read_on_arrival(chat: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        (live,) = await chat.wait_for("message:broadcast")
        listed = await chat.call("conversation:list", {})
        conversation = conversation_with(listed["data"], creator)
        synced = await chat.call(
            "messages:sync", {"conversation_id": conversation["id"], "after_seq": 0}
        )
        return live, synced["data"]

    readers = [asyncio.create_task(read_on_arrival(chat)) for chat in chats]
    ack = await studio.call(
        "ppv:broadcast", {"client_id": "drop-1", "body": "the set", "price_cents": 900}
    )
    seen = await asyncio.gather(*readers)

    assert ack["ok"], ack
    assert ack["data"]["recipients"] == 6
    for live, synced in seen:
        assert live["broadcast_id"] == ack["data"]["broadcast_id"]
        (copy,) = synced["items"]
        assert copy["seq"] == 1 and copy["locked"] is True and copy["body"] is None
        assert copy["sender_id"] == creator.id and copy["price_cents"] == 900
        assert copy["created_at"] == live["created_at"]
    assert await copies(services, ack["data"]["broadcast_id"]) == sorted(
        (fan.id, 1) for fan in fans
    )


async def test_a_broadcast_whose_sender_died_is_written_by_the_first_reader(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(2)]
    await subscribe(services, fans, creator)
    broadcast_id = await committed_but_never_settled(services, creator, "orphan")

    chat = await sockets.connect("/chat", fans[0])
    listed = await chat.call("conversation:list", {})

    assert listed["ok"], listed
    last = conversation_with(listed["data"], creator)["last_message"]
    assert last["seq"] == 1 and last["locked"] is True
    assert last["preview"] == {"text": "psst", "media_count": 0, "media": []}
    # Settling is for the whole audience, not only the reader who triggered it.
    assert await copies(services, broadcast_id) == sorted((fan.id, 1) for fan in fans)
    studio = await sockets.connect("/ppv", creator)
    retry = await studio.call(
        "ppv:broadcast", {"client_id": "orphan", "body": "left behind", "price_cents": 300}
    )
    assert retry["data"] == {"broadcast_id": str(broadcast_id), "recipients": 2}
    assert await copies(services, broadcast_id) == sorted((fan.id, 1) for fan in fans)


async def test_the_sweep_writes_a_dead_senders_broadcast_that_nobody_reads(
    settings: Settings, services: RunServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadcast_ops, "ABANDONED_AFTER_SECONDS", 0.0)
    async with node(settings, outbox_poll_seconds=0.1) as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        await subscribe(services, [fan], creator)
        broadcast_id = await committed_but_never_settled(services, creator, "nobody-reads")

        for _ in range(100):
            if await copies(services, broadcast_id):
                break
            await asyncio.sleep(0.05)

        assert await copies(services, broadcast_id) == [(fan.id, 1)]
        async with database(services) as conn:
            recipients = await conn.fetchval(
                "select recipients from broadcasts where id = $1 and settled_at is not null",
                broadcast_id,
            )
        assert recipients == 1
