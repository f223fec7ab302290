"""Bad input, oversize frames and a database outage: each answered, nothing half-done."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm, sent
from tests.outages import TcpProxy
from tests.support import Api, Sockets

MARK = "LEAKCHECK"


def _bad_sends(conversation_id: str) -> list[tuple[str, dict[str, Any], str, str]]:
    """(what, payload, expected code, the field that must be named)."""
    ok = {"conversation_id": conversation_id, "client_id": "bad", "body": "hi"}
    return [
        ("unknown conversation", {**ok, "conversation_id": "987654"}, "not_found", ""),
        ("malformed conversation id", {**ok, "conversation_id": "abc"}, "not_found", ""),
        ("empty body", {**ok, "body": ""}, "invalid", "body"),
        ("blank body", {**ok, "body": "   \n "}, "invalid", "body"),
        (
            "neither body nor media",
            {"conversation_id": conversation_id, "client_id": "b"},
            "invalid",
            "body",
        ),
        ("oversize body", {**ok, "body": MARK * 445}, "invalid", "body"),
        ("body of the wrong type", {**ok, "body": 5}, "invalid", "body"),
        (
            "conversation id of the wrong type",
            {**ok, "conversation_id": 5},
            "invalid",
            "conversation_id",
        ),
        (
            "missing client_id",
            {"conversation_id": conversation_id, "body": "x"},
            "invalid",
            "client_id",
        ),
        ("client_id of the wrong type", {**ok, "client_id": 7}, "invalid", "client_id"),
        ("media not a list", {**ok, "media": "x"}, "invalid", "media"),
        (
            "media with a non-http url",
            {**ok, "media": [{"url": f"ftp://{MARK}", "type": "image"}]},
            "invalid",
            "media.0.url",
        ),
        (
            "media without a type",
            {**ok, "media": [{"url": "https://a.example/x.jpg"}]},
            "invalid",
            "media.0.type",
        ),
        (
            "too many media",
            {**ok, "media": [{"url": "https://a.example/x", "type": "image"}] * 11},
            "invalid",
            "media",
        ),
        ("price as a string", {**ok, "price_cents": "500"}, "invalid", "price_cents"),
        ("price too low", {**ok, "price_cents": 99}, "invalid", "price_cents"),
        ("price too high", {**ok, "price_cents": 100_001}, "invalid", "price_cents"),
        ("unknown field", {**ok, MARK: 1}, "invalid", MARK),
    ]


async def test_every_bad_send_is_refused_with_the_right_code_and_no_echo(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    socket = await sockets.connect("/chat", creator)
    fan_socket = await sockets.connect("/chat", fan, events=("message:new",))
    for what, payload, code, field in _bad_sends(conversation_id):
        ack = await socket.call("message:send", payload)
        assert not ack["ok"], what
        assert ack["error"]["code"] == code, (what, ack)
        if field:
            assert field in [d["field"] for d in ack["error"]["details"]], (what, ack)
        # Only the field's name may appear, never what was sent in it.
        assert json.dumps(ack).count(MARK) <= (1 if field == MARK else 0), (what, ack)
    not_an_object = await socket.call("message:send", "just a string")
    assert not_an_object["error"]["code"] == "invalid"
    await fan_socket.assert_nothing("message:new")
    # The edges of the ranges are fine.
    for price in (100, 100_000):
        ack = await socket.call(
            "message:send",
            {
                "conversation_id": conversation_id,
                "client_id": f"p{price}",
                "body": "x",
                "price_cents": price,
            },
        )
        assert sent(ack)["price_cents"] == price
    longest = sent(
        await socket.call(
            "message:send",
            {"conversation_id": conversation_id, "client_id": "long", "body": f"  {'y' * 4000}  "},
        )
    )
    assert longest["body"] == "y" * 4000


async def test_fans_cannot_send_paid_messages_and_outsiders_cannot_touch_a_conversation(
    api: Api, sockets: Sockets
) -> None:
    creator, fan, outsider = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    conversation_id = await open_dm(sockets, creator, fan)
    fan_socket = await sockets.connect("/chat", fan)
    priced = await fan_socket.call(
        "message:send",
        {"conversation_id": conversation_id, "client_id": "f", "body": "x", "price_cents": 500},
    )
    assert priced["error"]["code"] == "forbidden"

    stranger = await sockets.connect("/chat", outsider)
    attempts = [
        ("message:send", {"conversation_id": conversation_id, "client_id": "s", "body": "hi"}),
        ("message:read", {"conversation_id": conversation_id, "seq": 1}),
        ("messages:sync", {"conversation_id": conversation_id, "after_seq": 0}),
    ]
    for event, payload in attempts:
        assert (await stranger.call(event, payload))["error"]["code"] == "forbidden", event
        unknown = {**payload, "conversation_id": "424242"}
        assert (await stranger.call(event, unknown))["error"]["code"] == "not_found", event
    status, body = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=outsider
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await stranger.call("conversation:list", {}))["data"]["items"] == []

    for payload in (
        {"conversation_id": conversation_id, "seq": "3"},
        {"conversation_id": conversation_id, "seq": -1},
        {"conversation_id": conversation_id},
    ):
        assert (await fan_socket.call("message:read", payload))["error"]["code"] == "invalid"
    for payload in (
        {"conversation_id": conversation_id, "after_seq": -1},
        {"conversation_id": conversation_id, "after_seq": 0, "limit": 201},
        {"conversation_id": conversation_id, "after_seq": True},
    ):
        assert (await fan_socket.call("messages:sync", payload))["error"]["code"] == "invalid"


async def test_a_two_megabyte_frame_is_refused_and_nobody_else_notices(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    fan_socket = await sockets.connect("/chat", fan, events=("message:new",))
    creator_socket = await sockets.connect("/chat", creator)
    abuser = await sockets.connect("/chat", creator)
    await abuser.client.emit(
        "message:send",
        {"conversation_id": conversation_id, "client_id": "big", "body": "z" * 2_000_000},
        namespace="/chat",
    )
    for _ in range(100):
        if not abuser.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not abuser.client.connected

    ack = await creator_socket.call(
        "message:send", {"conversation_id": conversation_id, "client_id": "after", "body": "ok"}
    )
    assert sent(ack)["seq"] == 1
    [message] = await fan_socket.wait_for("message:new")
    assert message["body"] == "ok"


@pytest.mark.timeout(60)
async def test_a_send_while_the_database_is_down_is_unavailable_and_the_retry_lands_once(
    settings: Settings,
) -> None:
    assert settings.database_url is not None
    parsed = urlparse(settings.database_url)
    # The shared proxy: this file's own copy awaited `Server.wait_closed()` before closing its
    # connections, which from Python 3.12 waits for them, so `cut()` hung (a timeout on 3.13).
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    via_proxy = urlunparse(parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}"))
    try:
        async with node(
            settings,
            database_url=via_proxy,
            db_pool_min_size=1,
            db_pool_max_size=2,
            db_statement_timeout_ms=1000,
        ) as n:
            creator, fan = await n.api.register(role="creator"), await n.api.register()
            conversation_id = await open_dm(n.sockets, creator, fan)
            creator_socket = await n.sockets.connect("/chat", creator)
            fan_socket = await n.sockets.connect("/chat", fan, events=("message:new",))
            payload = {"conversation_id": conversation_id, "client_id": "outage", "body": "hi"}

            await proxy.cut()
            down = await creator_socket.call("message:send", payload, timeout=10)
            assert down["ok"] is False and down["error"]["code"] == "unavailable"
            await fan_socket.assert_nothing("message:new")

            await proxy.start()
            up = await creator_socket.call("message:send", payload, timeout=10)
            assert sent(up)["seq"] == 1
            again = await creator_socket.call("message:send", payload, timeout=10)
            assert again == up
            [delivered] = await fan_socket.wait_for("message:new")
            assert delivered["id"] == up["data"]["id"]
            await fan_socket.assert_nothing("message:new")
            synced = await fan_socket.call(
                "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
            )
            assert [m["seq"] for m in synced["data"]["items"]] == [1]
    finally:
        await proxy.cut()
