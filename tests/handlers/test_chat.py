"""Fans and creators open conversations and exchange messages live, on every device."""

from __future__ import annotations

import asyncio
import json

from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm, sent
from tests.media_support import photo_with_gps, unsigned, upload
from tests.support import Api, Sockets

NEW = ("message:new", "conversation:new", "message:read")


async def test_opening_a_dm_twice_gives_the_same_conversation_and_tells_the_others(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    phone = await sockets.connect("/chat", creator, events=NEW)
    laptop = await sockets.connect("/chat", creator, events=NEW)
    fan_socket = await sockets.connect("/chat", fan, events=NEW)

    first = await phone.call("conversation:open", {"participant_ids": [fan.id]})
    assert first["ok"], first
    conversation = first["data"]
    assert set(conversation["participant_ids"]) == {creator.id, fan.id}
    assert conversation["kind"] == "direct" and isinstance(conversation["id"], str)

    [announced] = await fan_socket.wait_for("conversation:new")
    assert announced == conversation
    [on_laptop] = await laptop.wait_for("conversation:new")
    assert on_laptop == conversation
    await phone.assert_nothing("conversation:new")

    again = await fan_socket.call("conversation:open", {"participant_ids": [creator.id, fan.id]})
    assert again["data"]["id"] == conversation["id"]
    await phone.assert_nothing("conversation:new")


async def test_concurrent_opens_of_one_pair_agree_on_one_conversation(
    api: Api, sockets: Sockets
) -> None:
    a, b = await api.register(), await api.register()
    sa, sb = await sockets.connect("/chat", a), await sockets.connect("/chat", b)
    acks = await asyncio.gather(
        *[sa.call("conversation:open", {"participant_ids": [b.id]}) for _ in range(4)],
        *[sb.call("conversation:open", {"participant_ids": [a.id]}) for _ in range(4)],
    )
    assert len({ack["data"]["id"] for ack in acks}) == 1


async def test_a_group_is_new_each_time_and_bounded_in_size(
    settings: Settings,
) -> None:
    async with node(settings, group_max_members=3) as n:
        a, b, c, d = [await n.api.register() for _ in range(4)]
        socket = await n.sockets.connect("/chat", a)
        c_socket = await n.sockets.connect("/chat", c, events=NEW)
        group = await socket.call(
            "conversation:open", {"participant_ids": [b.id, c.id], "title": "  Crew "}
        )
        assert group["data"]["kind"] == "group" and group["data"]["title"] == "Crew"
        assert set(group["data"]["participant_ids"]) == {a.id, b.id, c.id}
        await c_socket.wait_for("conversation:new")
        second = await socket.call("conversation:open", {"participant_ids": [b.id, c.id]})
        assert second["data"]["id"] != group["data"]["id"]
        too_big = await socket.call("conversation:open", {"participant_ids": [b.id, c.id, d.id]})
        assert too_big["error"]["code"] == "invalid"


async def test_opening_with_nobody_or_an_unknown_user_is_refused(
    api: Api, sockets: Sockets
) -> None:
    a = await api.register()
    socket = await sockets.connect("/chat", a)
    alone = await socket.call("conversation:open", {"participant_ids": [a.id]})
    assert alone["error"]["code"] == "invalid"
    ghost = await socket.call("conversation:open", {"participant_ids": ["no-such-user"]})
    assert ghost["error"]["code"] == "not_found"
    wrong = await socket.call("conversation:open", {"participant_ids": "x"})
    assert wrong["error"]["code"] == "invalid"


async def test_a_message_reaches_every_socket_of_every_participant_and_no_one_else(
    api: Api, sockets: Sockets
) -> None:
    creator, fan, outsider = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    conversation_id = await open_dm(sockets, creator, fan)
    phone = await sockets.connect("/chat", creator, events=NEW)
    laptop = await sockets.connect("/chat", creator, events=NEW)
    fan_a = await sockets.connect("/chat", fan, events=NEW)
    fan_b = await sockets.connect("/chat", fan, events=NEW)
    stranger = await sockets.connect("/chat", outsider, events=NEW)

    ack = await phone.call(
        "message:send",
        {"conversation_id": conversation_id, "client_id": "c-1", "body": "  hello  "},
    )
    message = sent(ack)
    assert message["seq"] == 1 and message["body"] == "hello" and message["locked"] is False
    assert message["sender_id"] == creator.id and message["client_id"] == "c-1"
    assert message["price_cents"] is None and message["media"] == []
    for socket in (phone, laptop, fan_a, fan_b):
        assert await socket.wait_for("message:new") == [message]
    await stranger.assert_nothing("message:new")


async def test_fifty_concurrent_sends_get_seqs_one_to_fifty(settings: Settings) -> None:
    async with node(settings, message_rate_limit="1000/1s:1000") as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        senders = [await n.sockets.connect("/chat", u) for u in (creator, fan) for _ in range(2)]
        watcher = await n.sockets.connect("/chat", fan, events=NEW)
        acks = await asyncio.gather(
            *[
                senders[i % 4].call(
                    "message:send",
                    {"conversation_id": conversation_id, "client_id": f"m{i}", "body": f"#{i}"},
                )
                for i in range(50)
            ]
        )
        assert sorted(sent(ack)["seq"] for ack in acks) == list(range(1, 51))
        arrived = await watcher.wait_for("message:new", 50)
        assert sorted(m["seq"] for m in arrived) == list(range(1, 51))


async def test_a_retried_client_id_returns_the_first_message_and_delivers_nothing_again(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    sender = await sockets.connect("/chat", creator)
    fan_socket = await sockets.connect("/chat", fan, events=NEW)
    payload = {"conversation_id": conversation_id, "client_id": "retry-me", "body": "once"}

    first = sent(await sender.call("message:send", payload))
    again = sent(await sender.call("message:send", {**payload, "body": "twice?"}))
    assert again == first
    # A burst of concurrent retries (a flaky network resending): still one message.
    racing = await asyncio.gather(
        *[sender.call("message:send", {**payload, "client_id": "race"}) for _ in range(5)]
    )
    assert len({sent(ack)["id"] for ack in racing}) == 1
    assert {sent(ack)["seq"] for ack in racing} == {2}
    await fan_socket.wait_for("message:new", 2)
    await fan_socket.assert_nothing("message:new", within=0.5)
    assert [m["seq"] for m in fan_socket.received["message:new"]] == [1, 2]

    other = await open_dm(sockets, creator, await api.register())
    reused = await sender.call("message:send", {**payload, "conversation_id": other})
    assert reused["error"]["code"] == "conflict"


async def test_read_receipts_move_forward_only_and_reach_the_right_sockets(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    creator_socket = await sockets.connect("/chat", creator, events=NEW)
    fan_phone = await sockets.connect("/chat", fan, events=NEW)
    fan_laptop = await sockets.connect("/chat", fan, events=NEW)
    for i in range(5):
        await creator_socket.call(
            "message:send", {"conversation_id": conversation_id, "client_id": f"r{i}", "body": "x"}
        )
    await fan_phone.call(
        "message:send", {"conversation_id": conversation_id, "client_id": "mine", "body": "y"}
    )

    ack = await fan_phone.call("message:read", {"conversation_id": conversation_id, "seq": 3})
    assert ack == {
        "ok": True,
        "data": {"conversation_id": conversation_id, "seq": 3, "unread_count": 2},
    }
    receipt = {"conversation_id": conversation_id, "user_id": fan.id, "seq": 3}
    assert await creator_socket.wait_for("message:read") == [receipt]
    assert await fan_laptop.wait_for("message:read") == [receipt]
    await fan_phone.assert_nothing("message:read")

    back = await fan_phone.call("message:read", {"conversation_id": conversation_id, "seq": 1})
    assert back["data"] == {"conversation_id": conversation_id, "seq": 3, "unread_count": 2}
    await creator_socket.assert_nothing("message:read")
    # Past the end is clamped to the last message; the fan's own message never counts.
    end = await fan_phone.call("message:read", {"conversation_id": conversation_id, "seq": 99})
    assert end["data"] == {"conversation_id": conversation_id, "seq": 6, "unread_count": 0}


async def test_unread_counts_stay_exact_under_concurrent_sends_and_reads(
    settings: Settings,
) -> None:
    async with node(settings, message_rate_limit="1000/1s:1000") as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        creator_socket = await n.sockets.connect("/chat", creator)
        fan_socket = await n.sockets.connect("/chat", fan)

        async def send(i: int) -> None:
            sent(
                await creator_socket.call(
                    "message:send",
                    {"conversation_id": conversation_id, "client_id": f"u{i}", "body": "x"},
                )
            )

        async def read(seq: int) -> int:
            ack = await fan_socket.call(
                "message:read", {"conversation_id": conversation_id, "seq": seq}
            )
            return int(ack["data"]["seq"])

        results = await asyncio.gather(
            *[send(i) for i in range(30)], *[read(seq) for seq in range(0, 40, 3)]
        )
        final_read = max(r for r in results if isinstance(r, int))
        listed = await fan_socket.call("conversation:list", {})
        [item] = listed["data"]["items"]
        assert item["last_read_seq"] == final_read
        assert item["unread_count"] == 30 - final_read
        done = await fan_socket.call(
            "message:read", {"conversation_id": conversation_id, "seq": 30}
        )
        assert done["data"]["unread_count"] == 0


async def test_the_conversation_list_pages_by_activity_with_last_message_and_unread(
    api: Api, sockets: Sockets
) -> None:
    me = await api.register(role="creator")
    others = [await api.register() for _ in range(5)]
    ids = [await open_dm(sockets, me, other) for other in others]
    socket = await sockets.connect("/chat", me)
    friend = await sockets.connect("/chat", others[2])
    sent(
        await friend.call(
            "message:send", {"conversation_id": ids[2], "client_id": "hi", "body": "hi"}
        )
    )

    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(5):
        ack = await socket.call("conversation:list", {"limit": 2, "cursor": cursor})
        seen.extend(ack["data"]["items"])
        cursor = ack["data"]["next_cursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == [ids[2], ids[4], ids[3], ids[1], ids[0]]
    top = seen[0]
    assert top["unread_count"] == 1 and top["last_message"]["body"] == "hi"  # type: ignore[index]
    assert seen[1]["last_message"] is None and seen[1]["unread_count"] == 0
    bad = await socket.call("conversation:list", {"cursor": "garbage!"})
    assert bad["error"]["code"] == "invalid"


async def test_a_device_that_drops_resyncs_every_message_exactly_once_in_order(
    settings: Settings,
) -> None:
    async with node(settings, message_rate_limit="100/1s:100") as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        creator_socket = await n.sockets.connect("/chat", creator)
        fan_socket = await n.sockets.connect("/chat", fan, events=NEW)
        body = {"conversation_id": conversation_id, "client_id": "m0", "body": "0"}
        sent(await creator_socket.call("message:send", body))
        [first] = await fan_socket.wait_for("message:new")
        await fan_socket.disconnect()

        for i in range(1, 21):
            body = {"conversation_id": conversation_id, "client_id": f"m{i}", "body": str(i)}
            sent(await creator_socket.call("message:send", body))

        back = await n.sockets.connect("/chat", fan, events=NEW)
        held = [first]
        after, has_more = first["seq"], True
        while has_more:
            page = await back.call(
                "messages:sync",
                {"conversation_id": conversation_id, "after_seq": after, "limit": 7},
            )
            held.extend(page["data"]["items"])
            has_more = page["data"]["has_more"]
            after = held[-1]["seq"]
        assert [m["body"] for m in held] == [str(i) for i in range(21)]
        assert [m["seq"] for m in held] == list(range(1, 22))
        assert len({m["id"] for m in held}) == 21
        await back.assert_nothing("message:new")


async def test_paid_messages_are_locked_for_recipients_until_unlocked(
    api: Api, sockets: Sockets, server: object
) -> None:
    from backchannel.domain import chat
    from backchannel.server.keys import RUNTIME

    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    creator_socket = await sockets.connect("/chat", creator, events=NEW)
    fan_socket = await sockets.connect("/chat", fan, events=NEW)
    secret_body = "SECRET-BODY-7731"
    photo = await upload(api, creator, photo_with_gps(), "image/jpeg")
    ack = await creator_socket.call(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_id": "ppv-1",
            "body": secret_body,
            "media": [{"media_id": photo["media_id"]}],
            "price_cents": 500,
            "preview_text": "a little something",
        },
    )
    whole = sent(ack)
    assert whole["body"] == secret_body and whole["locked"] is False
    assert [m["media_id"] for m in whole["media"]] == [photo["media_id"]]
    assert "/full?" in whole["media"][0]["url"]
    assert whole["price_cents"] == 500 and whole["currency"] == "usd"
    assert await creator_socket.wait_for("message:new") == [whole]

    [locked] = await fan_socket.wait_for("message:new")
    assert locked["locked"] is True and locked["body"] is None and locked["media"] == []
    assert locked["preview"]["text"] == "a little something"
    assert locked["preview"]["media_count"] == 1
    assert locked["preview"]["media"][0]["blurhash"] == photo["blurhash"]
    assert locked["price_cents"] == 500 and locked["id"] == whole["id"]

    synced = await fan_socket.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
    )
    listed = await fan_socket.call("conversation:list", {})
    status, history = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=fan
    )
    assert status == 200
    # The same locked rendering everywhere (its preview links are signed per read).
    assert unsigned(synced["data"]["items"]) == unsigned([locked])
    assert unsigned(listed["data"]["items"][0]["last_message"]) == unsigned(locked)
    assert unsigned(history["items"]) == unsigned([locked])
    everything_the_fan_saw = json.dumps([fan_socket.received, synced, listed, history])
    assert "SECRET" not in everything_the_fan_saw

    # The payments side records an unlock; from then on the fan sees it whole everywhere.
    runtime = server.app[RUNTIME]  # type: ignore[attr-defined]
    async with runtime.db.transaction() as conn:
        await conn.execute(
            "insert into message_unlocks (message_id, user_id) values ($1, $2)",
            int(whole["id"]),
            fan.id,
        )
        unlocked = await chat.get_message_for(runtime, conn, whole["id"], fan.id)
    assert unlocked.body == secret_body and unlocked.locked is False
    synced = await fan_socket.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
    )
    listed = await fan_socket.call("conversation:list", {})
    _, history = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=fan
    )
    for seen in (
        synced["data"]["items"][0],
        listed["data"]["items"][0]["last_message"],
        history["items"][0],
    ):
        assert seen["body"] == secret_body and seen["locked"] is False
        assert [m["media_id"] for m in seen["media"]] == [photo["media_id"]]
        assert f"v={fan.id}" in seen["media"][0]["url"]


async def test_the_rate_limit_answers_rate_limited_with_a_wait(api: Api, sockets: Sockets) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    socket = await sockets.connect("/chat", creator)
    acks = [
        await socket.call(
            "message:send", {"conversation_id": conversation_id, "client_id": f"x{i}", "body": "x"}
        )
        for i in range(12)
    ]
    assert all(ack["ok"] for ack in acks[:10])
    limited = acks[-1]
    assert limited["error"]["code"] == "rate_limited"
    assert 0 < limited["error"]["details"]["retry_after_ms"] <= 1000


async def test_a_socket_that_names_its_last_seqs_gets_what_it_missed_on_connect(
    api: Api, sockets: Sockets
) -> None:
    creator, fan, outsider = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    conversation_id = await open_dm(sockets, creator, fan)
    elsewhere = await open_dm(sockets, creator, outsider)
    creator_socket = await sockets.connect("/chat", creator)
    for i in range(4):
        sent(
            await creator_socket.call(
                "message:send",
                {"conversation_id": conversation_id, "client_id": f"p{i}", "body": str(i)},
            )
        )
    auth = {
        "token": fan.access_token,
        "last_seq": {conversation_id: 1, elsewhere: 0, "junk": "x", "123456": 0},
    }
    back = await sockets.connect("/chat", auth=auth, events=(*NEW, "messages:replayed"))
    [done] = await back.wait_for("messages:replayed")
    assert done == {"conversation_id": conversation_id, "up_to_seq": 4, "has_more": False}
    assert [m["seq"] for m in back.received["message:new"]] == [2, 3, 4]
    await back.assert_nothing("messages:replayed")


async def test_messages_flow_over_msgpack_too(settings: Settings) -> None:
    import socketio

    async with node(settings, msgpack=True) as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        clients = [socketio.AsyncClient(serializer="msgpack", reconnection=False) for _ in range(2)]
        arrived: asyncio.Queue[object] = asyncio.Queue()
        clients[1].on("message:new", arrived.put, namespace="/chat")
        try:
            for client, user in zip(clients, (creator, fan), strict=True):
                await client.connect(
                    n.api.base_url,
                    namespaces=["/chat"],
                    auth={"token": user.access_token},
                    transports=["websocket"],
                )
            opened = await clients[0].call(
                "conversation:open", {"participant_ids": [fan.id]}, namespace="/chat", timeout=5
            )
            ack = await clients[0].call(
                "message:send",
                {"conversation_id": opened["data"]["id"], "client_id": "mp", "body": "packed"},
                namespace="/chat",
                timeout=5,
            )
            assert sent(ack)["body"] == "packed"
            assert await asyncio.wait_for(arrived.get(), 5) == ack["data"]
        finally:
            for client in clients:
                await client.disconnect()
