"""A chat message to someone not on `/chat` becomes one `message` notification per conversation."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from redis.exceptions import RedisError

from backchannel.outage_log import OUTAGES
from backchannel.rooms.names import Namespace
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.nodes import eventually, node
from tests.outages import RedisServer
from tests.support import Api, Socket, Sockets, User

_client_ids = itertools.count(1)


async def send(chat: Socket, conversation_id: str, body: str, **extra: Any) -> dict[str, Any]:
    ack = await chat.call(
        "message:send",
        {"conversation_id": conversation_id, "client_id": f"c{next(_client_ids)}", "body": body}
        | extra,
    )
    assert ack["ok"], ack
    return dict(ack["data"])


async def open_with(chat: Socket, other: User) -> str:
    ack = await chat.call("conversation:open", {"participant_ids": [other.id]})
    assert ack["ok"], ack
    return str(ack["data"]["id"])


async def test_messages_to_a_user_off_chat_collapse_into_one_notification(
    api: Api, sockets: Sockets
) -> None:
    creator = await api.register(role="creator", display_name="Ada")
    fan = await api.register()
    bell = await sockets.connect(
        "/notifications", fan, events=("notification", "notifications:unread")
    )
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "hello")
    second = await send(chat, conversation_id, "are you there?")

    live = await bell.wait_for("notification", 2)
    assert live[1]["type"] == "message" and live[1]["title"] == "New message from Ada"
    assert live[1]["body"] == "are you there?"
    assert live[1]["data"]["conversation_id"] == conversation_id
    assert live[1]["data"]["message_id"] == second["id"]
    page = (await bell.call("notifications:sync", {}))["data"]
    assert len(page["items"]) == 1 and page["unread_count"] == 1
    assert page["items"][0]["body"] == "are you there?"
    assert (await bell.wait_for("notifications:unread"))[-1] == {"count": 1}


async def test_a_paid_message_notification_does_not_give_the_content_away(
    api: Api, sockets: Sockets
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    bell = await sockets.connect("/notifications", fan, events=("notification",))
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)
    await send(chat, conversation_id, "the secret", price_cents=500)
    (live,) = await bell.wait_for("notification")
    assert "secret" not in str(live)


async def test_a_user_reading_chat_gets_no_message_notification(api: Api, sockets: Sockets) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    bell = await sockets.connect("/notifications", fan, events=("notification",))
    await sockets.connect("/chat", fan)
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)
    await send(chat, conversation_id, "hi")
    await bell.assert_nothing("notification", within=0.5)
    # The sender is never notified of their own message either.
    assert (await bell.call("notifications:sync", {}))["data"]["items"] == []


async def test_a_chat_socket_on_another_node_counts(cluster_settings: Settings, api: Api) -> None:
    node_a = TestServer(create_app(cluster_settings), host="127.0.0.1")
    node_b = TestServer(create_app(cluster_settings), host="127.0.0.1")
    await node_a.start_server()
    await node_b.start_server()
    on_a = Sockets(str(node_a.make_url("")).rstrip("/"))
    on_b = Sockets(str(node_b.make_url("")).rstrip("/"))
    try:
        creator = await api.register(role="creator")
        fan = await api.register()
        bell = await on_a.connect("/notifications", fan, events=("notification",))
        fan_chat = await on_b.connect("/chat", fan)
        chat = await on_a.connect("/chat", creator)
        conversation_id = await open_with(chat, fan)

        await send(chat, conversation_id, "seen on b")
        await bell.assert_nothing("notification", within=0.5)

        await fan_chat.disconnect()
        counts = node_a.app[RUNTIME].socket_counts
        assert counts is not None
        for _ in range(100):  # the server notices the close a moment after the client
            if not await counts.with_open(Namespace.CHAT, [fan.id]):
                break
            await asyncio.sleep(0.02)
        await send(chat, conversation_id, "now away")
        (live,) = await bell.wait_for("notification")
        assert live["body"] == "now away"
    finally:
        await on_a.close_all()
        await on_b.close_all()
        await node_a.close()
        await node_b.close()


async def test_reading_the_conversation_in_chat_reads_its_notification(
    api: Api, sockets: Sockets
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    bell = await sockets.connect(
        "/notifications", fan, events=("notification", "notifications:unread")
    )
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)
    await send(chat, conversation_id, "one")
    last = await send(chat, conversation_id, "two")
    await bell.wait_for("notification", 2)

    fan_chat = await sockets.connect("/chat", fan)
    ack = await fan_chat.call("message:read", {"conversation_id": conversation_id, "seq": 1})
    assert ack["ok"], ack
    await bell.assert_nothing("notifications:unread", within=0.3)  # one message still unread

    ack = await fan_chat.call(
        "message:read", {"conversation_id": conversation_id, "seq": last["seq"]}
    )
    assert ack["ok"], ack
    assert (await bell.wait_for("notifications:unread", 2))[-1] == {"count": 0}
    page = (await bell.call("notifications:sync", {}))["data"]
    assert page["unread_count"] == 0 and page["items"][0]["read"] is True


@pytest.mark.parametrize("connected", ["before the restart", "while redis is down"])
async def test_a_chat_reader_is_not_notified_after_redis_restarts(
    cluster_settings: Settings, tmp_path: Path, connected: str
) -> None:
    # Redis restarts empty: the count of a /chat socket that was open before (or whose write
    # failed while Redis was down) is sent again, so its user does not look away.
    redis = RedisServer(tmp_path)
    await redis.start()
    fast = cluster_settings.model_copy(
        update={
            "redis_url": redis.url,
            "redis_ping_interval_seconds": 0.3,
            "redis_retry_max_seconds": 0.3,
            "redis_timeout_seconds": 1.0,
            "presence_heartbeat_seconds": 0.3,
            "presence_node_ttl_seconds": 3.0,
        }
    )
    try:
        async with node(fast) as a:
            creator = await a.api.register(role="creator")
            fan = await a.api.register()
            chat = await a.sockets.connect("/chat", creator)
            conversation_id = await open_with(chat, fan)
            if connected == "before the restart":
                await a.sockets.connect("/chat", fan)
                redis.stop()
            else:
                redis.stop()
                await a.sockets.connect("/chat", fan)
            await redis.start()
            counts = a.server.app[RUNTIME].socket_counts
            assert counts is not None

            async def counted() -> bool:
                try:
                    return bool(await counts.with_open(Namespace.CHAT, [fan.id]))
                except RedisError:
                    return False  # a pooled connection from before the restart

            await eventually(counted, timeout=10, what="the fan's /chat socket counted again")
            await send(chat, conversation_id, "seen in chat")
            bell = await a.sockets.connect("/notifications", fan, events=("notification",))
            assert (await bell.call("notifications:sync", {}))["data"]["items"] == []
    finally:
        redis.stop()


async def test_a_redis_outage_is_logged_once_not_once_per_message(
    cluster_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    fast = cluster_settings.model_copy(
        update={
            "redis_url": redis.url,
            "redis_ping_interval_seconds": 0.3,
            "redis_retry_max_seconds": 0.3,
            "redis_timeout_seconds": 1.0,
        }
    )
    try:
        async with node(fast) as a:
            creator = await a.api.register(role="creator")
            fan = await a.api.register()  # never on /chat: every message notifies them
            chat = await a.sockets.connect("/chat", creator)
            conversation_id = await open_with(chat, fan)
            OUTAGES.recovered("redis")  # whatever an earlier test left open
            caplog.clear()
            redis.stop()
            with caplog.at_level(logging.WARNING, logger="backchannel.outages"):
                for n in range(10):
                    await send(chat, conversation_id, f"while redis is down {n}")
                await redis.start()

                async def delivered() -> bool:
                    await send(chat, conversation_id, "after")
                    return any("available again" in r.getMessage() for r in caplog.records)

                await eventually(delivered, timeout=10, interval=0.2, what="outage over")
    finally:
        redis.stop()
    # Every Redis user (deliveries, publishes, counts, the Redis loops) shares one outage: a
    # line when it starts and one when it ends, not one per message (ten were sent).
    lines = [r.getMessage() for r in caplog.records if r.name == "backchannel.outages"]
    assert lines and lines[0].startswith("redis unavailable: "), lines
    assert any(line.startswith("redis available again after ") for line in lines), lines
    assert len(lines) <= 4, lines
