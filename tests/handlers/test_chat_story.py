"""The story from issue #3, end to end: real server, real clients, every socket checked."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.chat_support import sent
from tests.media_support import short_mp4, upload
from tests.support import Api, Sockets

CHAT_EVENTS = ("message:new", "message:read", "conversation:new")


async def test_a_creator_and_a_fan_on_two_devices_talk_live(api: Api, sockets: Sockets) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    creator_chat = await sockets.connect("/chat", creator, events=CHAT_EVENTS)
    creator_typing = await sockets.connect("/typing", creator, events=("typing",))
    phone = await sockets.connect("/chat", fan, events=CHAT_EVENTS)
    phone_typing = await sockets.connect("/typing", fan, events=("typing",))
    laptop = await sockets.connect("/chat", fan, events=CHAT_EVENTS)
    laptop_typing = await sockets.connect("/typing", fan, events=("typing",))

    # The creator opens a DM; both of the fan's devices learn of it.
    opened = await creator_chat.call("conversation:open", {"participant_ids": [fan.id]})
    conversation = opened["data"]
    cid = conversation["id"]
    assert await phone.wait_for("conversation:new") == [conversation]
    assert await laptop.wait_for("conversation:new") == [conversation]

    # Hello, live on every socket.
    hello = sent(
        await creator_chat.call(
            "message:send", {"conversation_id": cid, "client_id": "c1", "body": "Hi there!"}
        )
    )
    for socket in (creator_chat, phone, laptop):
        assert await socket.wait_for("message:new") == [hello]

    # The fan types on the phone: only the creator sees it.
    await phone_typing.call("typing:start", {"conversation_id": cid})
    [typing] = await creator_typing.wait_for("typing")
    assert typing == {"conversation_id": cid, "user_id": fan.id, "typing": True}
    await phone_typing.call("typing:stop", {"conversation_id": cid})
    await creator_typing.wait_for("typing", 2)
    await phone_typing.assert_nothing("typing")
    await laptop_typing.assert_nothing("typing")

    # The fan answers and reads; the receipt reaches the creator and the fan's other device.
    reply = sent(
        await phone.call(
            "message:send", {"conversation_id": cid, "client_id": "f1", "body": "Hello!"}
        )
    )
    for socket in (creator_chat, phone, laptop):
        assert (await socket.wait_for("message:new", 2))[-1] == reply
    read = await phone.call("message:read", {"conversation_id": cid, "seq": hello["seq"]})
    assert read["data"] == {"conversation_id": cid, "seq": 1, "unread_count": 0}
    receipt = {"conversation_id": cid, "user_id": fan.id, "seq": 1}
    assert await creator_chat.wait_for("message:read") == [receipt]
    assert await laptop.wait_for("message:read") == [receipt]
    await phone.assert_nothing("message:read")

    # The laptop drops; three messages go by; it comes back and syncs exactly what it missed.
    last_seen = laptop.received["message:new"][-1]["seq"]
    await laptop.disconnect()
    missed = [
        sent(
            await creator_chat.call(
                "message:send", {"conversation_id": cid, "client_id": f"c{i}", "body": f"#{i}"}
            )
        )
        for i in range(2, 5)
    ]
    laptop = await sockets.connect("/chat", fan, events=CHAT_EVENTS)
    synced = await laptop.call("messages:sync", {"conversation_id": cid, "after_seq": last_seen})
    assert synced["data"] == {"items": missed, "has_more": False}
    listed = await laptop.call("conversation:list", {})
    [row] = listed["data"]["items"]
    assert row["unread_count"] == 3 and row["last_message"] == missed[-1]

    # A paid message: whole for the creator, locked on both of the fan's devices.
    clip = await upload(api, creator, short_mp4(), "video/mp4")
    paid = sent(
        await creator_chat.call(
            "message:send",
            {
                "conversation_id": cid,
                "client_id": "ppv",
                "body": "EXCLUSIVE-CONTENT",
                "media": [{"media_id": clip["media_id"]}],
                "price_cents": 1500,
                "preview_text": "Something special",
            },
        )
    )
    assert paid["body"] == "EXCLUSIVE-CONTENT" and paid["locked"] is False
    assert (await creator_chat.wait_for("message:new", 6))[-1] == paid
    for socket in (phone, laptop):
        arrived = (await socket.wait_for("message:new"))[-1]
        assert arrived["id"] == paid["id"] and arrived["locked"] is True
        assert arrived["body"] is None and arrived["media"] == []
        assert arrived["preview"]["text"] == "Something special"
        assert arrived["preview"]["media_count"] == 1
        assert arrived["preview"]["media"][0]["kind"] == "video"
        assert "EXCLUSIVE" not in json.dumps(socket.received)
        assert "/full?" not in json.dumps(socket.received)


async def test_messages_and_rate_limits_span_the_nodes_of_a_cluster(
    cluster_settings: Settings,
) -> None:
    servers = [TestServer(create_app(cluster_settings), host="127.0.0.1") for _ in range(2)]
    for server in servers:
        await server.start_server()
    urls = [str(server.make_url("")).rstrip("/") for server in servers]
    node_a, node_b = Sockets(urls[0]), Sockets(urls[1])
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            api = Api(urls[0], session)
            creator, fan = await api.register(role="creator"), await api.register()
        on_a = await node_a.connect("/chat", creator)
        on_b = await node_b.connect("/chat", fan, events=("message:new",))
        creator_on_b = await node_b.connect("/chat", creator, events=("message:new",))
        cid = (await on_a.call("conversation:open", {"participant_ids": [fan.id]}))["data"]["id"]
        for i in range(10):
            ack = await on_a.call(
                "message:send", {"conversation_id": cid, "client_id": f"n{i}", "body": "x"}
            )
            sent(ack)
        assert len(await on_b.wait_for("message:new", 10)) == 10
        assert len(await creator_on_b.wait_for("message:new", 10)) == 10
        # The burst was spent on node A; node B knows it (the bucket is in Redis).
        limited = await creator_on_b.call(
            "message:send", {"conversation_id": cid, "client_id": "n10", "body": "x"}
        )
        assert limited["error"]["code"] == "rate_limited"
    finally:
        await node_a.close_all()
        await node_b.close_all()
        for server in servers:
            await server.close()
