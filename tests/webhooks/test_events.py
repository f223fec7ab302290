"""Each event type is produced by the user action behind it (one story per group)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestServer

from backchannel.domain import roles
from backchannel.persistence.message_appender import MessageAppender
from backchannel.persistence.messages import NewMessage
from backchannel.server.keys import RUNTIME
from tests.chat_support import open_dm, sent
from tests.relations import subscribe as subscribe_fan
from tests.services import RunServices
from tests.support import Api, Sockets
from tests.webhooks.conftest import subscribe
from tests.webhooks.receiver import Receiver


async def _webhook_rows(services: RunServices) -> int:
    conn = await asyncpg.connect(services.database_url)
    try:
        count: int = await conn.fetchval("select count(*) from webhook_events")
        return count
    finally:
        await conn.close()


async def test_sends_in_group_commit_each_make_one_message_created_and_reads_message_read(
    api: Api, sockets: Sockets, server: TestServer, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["message.created", "message.read"])
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(4)]
    dms = [await open_dm(sockets, creator, fan) for fan in fans]
    chats = [await sockets.connect("/chat", fan) for fan in fans]
    # Many sends at once: the writers group them into shared statements.
    acks = await asyncio.gather(
        *(
            chat.call(
                "message:send", {"conversation_id": dm, "client_id": f"c{n}", "body": f"m{n}"}
            )
            for n in range(10)
            for chat, dm in zip(chats, dms, strict=True)
        )
    )
    messages = [sent(ack) for ack in acks]
    created = await receiver.wait_delivered("message.created", len(messages))
    assert sorted(e["data"]["message_id"] for e in created) == sorted(m["id"] for m in messages)
    assert len({e["id"] for e in created}) == len(messages)
    for event, message in zip(
        sorted(created, key=lambda e: int(e["data"]["message_id"])),
        sorted(messages, key=lambda m: int(m["id"])),
        strict=True,
    ):
        assert event["data"]["seq"] == message["seq"]
        assert event["data"]["sender_id"] == message["sender_id"]

    # The creator reads one conversation up to the fan's last message.
    last = max(m["seq"] for m in messages if m["conversation_id"] == dms[0])
    studio = await sockets.connect("/chat", creator)
    ack = await studio.call("message:read", {"conversation_id": dms[0], "seq": last})
    assert ack["ok"], ack
    [read] = await receiver.wait_delivered("message.read")
    assert read["data"] == {
        "conversation_id": dms[0],
        "user_id": creator.id,
        "seq": last,
        "unread_count": 0,
    }
    # Reading the same place again moves nothing: no event.
    ack = await studio.call("message:read", {"conversation_id": dms[0], "seq": last})
    assert ack["ok"]
    assert all(r.signed for r in receiver.received)


async def test_a_group_committed_batch_writes_one_event_per_message(
    api: Api, sockets: Sockets, server: TestServer, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["message.created"])
    creator, fan = await api.register(role="creator"), await api.register()
    dm = int(await open_dm(sockets, creator, fan))
    rt = server.app[RUNTIME]
    # One writer: the first send is written alone, the nine queued behind it in one batch.
    appender = MessageAppender(rt.db, concurrency=1)
    appender.hook = rt.webhooks
    news = [
        NewMessage(dm, creator.id, f"g{n}", f"batched {n}", [], None, "usd", None)
        for n in range(10)
    ]
    results = await asyncio.gather(*(appender.append(new) for new in news))
    assert appender.batches >= 1 and appender.batched_messages >= 2
    stored = [r[0] for r in results if r is not None]
    assert len(stored) == 10
    created = await receiver.wait_delivered("message.created", 10)
    assert sorted(int(e["data"]["message_id"]) for e in created) == sorted(m.id for m in stored)
    assert sorted(e["data"]["seq"] for e in created) == list(range(1, 11))


async def test_with_no_endpoint_for_a_type_nothing_is_written_for_it(
    api: Api,
    sockets: Sockets,
    server: TestServer,
    key: str,
    receiver: Receiver,
    services: RunServices,
) -> None:
    await subscribe(api, key, receiver, ["user.banned"])
    creator, fan = await api.register(role="creator"), await api.register()
    dm = await open_dm(sockets, creator, fan)
    chat = await sockets.connect("/chat", creator)
    hub = server.app[RUNTIME].webhooks
    assert hub is not None and not hub.wants("message.created")
    for n in range(5):
        sent(
            await chat.call(
                "message:send", {"conversation_id": dm, "client_id": f"x{n}", "body": "hi"}
            )
        )
    assert await _webhook_rows(services) == 0


async def test_reports_and_bans_reach_the_platform(
    api: Api, sockets: Sockets, server: TestServer, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["report.created", "user.banned"])
    alice, troll = await api.register(), await api.register()
    moderator = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, moderator.email, "moderator")
    await open_dm(sockets, troll, alice)

    status, report = await api.call(
        "POST",
        "/api/v1/reports",
        json={"target": {"type": "user", "id": troll.id}, "reason": "spam"},
        user=alice,
    )
    assert status == 201, report
    status, _ = await api.call(
        "POST",
        "/api/v1/reports",
        json={"target": {"type": "user", "id": troll.id}, "reason": "hate"},
        user=alice,
    )
    assert status == 200  # the same report again: not a new event
    status, _ = await api.call(
        "POST", f"/api/v1/admin/users/{troll.id}/ban", json={"reason": "spam"}, user=moderator
    )
    assert status in (200, 201)

    [banned] = await receiver.wait_delivered("user.banned")
    assert banned["data"]["user_id"] == troll.id and banned["data"]["banned_by"] == moderator.id
    assert banned["data"]["reason"] == "spam"
    [reported] = receiver.delivered("report.created")
    assert reported["data"]["report_id"] == report["id"]
    assert reported["data"]["reporter_id"] == alice.id
    assert reported["data"]["target_type"] == "user" and reported["data"]["target_id"] == troll.id


async def test_a_publish_is_a_notification_created(api: Api, key: str, receiver: Receiver) -> None:
    await subscribe(api, key, receiver, ["notification.created"])
    fans = [await api.register() for _ in range(2)]
    status, result = await api.call(
        "POST",
        "/api/v1/publish",
        json={
            "user_ids": [f.id for f in fans],
            "notification": {"type": "live", "title": "Live now", "data": {"room": 7}},
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert status == 202
    [event] = await receiver.wait_delivered("notification.created")
    assert event["data"] == {
        "notification_id": result["id"],
        "type": "live",
        "title": "Live now",
        "body": None,
        "data": {"room": 7},
        "publisher": "platform",
        "recipients": 2,
        "recipient_ids": [f.id for f in fans],
    }


async def test_each_copy_of_a_paid_broadcast_is_a_message_created(
    api: Api, sockets: Sockets, key: str, receiver: Receiver, services: RunServices
) -> None:
    await subscribe(api, key, receiver, ["message.created"])
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(3)]
    for fan in fans:
        await subscribe_fan(services.database_url, fan.id, creator.id)
    studio = await sockets.connect("/ppv", creator)
    ack = await studio.call(
        "ppv:broadcast", {"client_id": "b1", "body": "new set", "price_cents": 300}
    )
    assert ack["ok"] and ack["data"]["recipients"] == 3, ack

    created = await receiver.wait_delivered("message.created", 3)
    assert {e["data"]["broadcast_id"] for e in created} == {ack["data"]["broadcast_id"]}
    assert all(e["data"]["paid"] and e["data"]["price_cents"] == 300 for e in created)
    assert all(e["data"]["sender_id"] == creator.id for e in created)
    assert len({e["data"]["conversation_id"] for e in created}) == 3
    assert all("body" not in e["data"] for e in created)
