"""Presence on one node: real transitions only, debounced offline, away, and who may watch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from backchannel.rooms.presence import Change
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.relations import share_conversation, subscribe
from tests.services import RunServices
from tests.support import Api, Socket, Sockets

DEBOUNCE = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short debounce and a quick sweep, so offline tests take about a second."""
    return settings.model_copy(
        update={"presence_offline_debounce_seconds": DEBOUNCE, "presence_sweep_seconds": 0.1}
    )


async def _watch(sockets: Sockets, watcher: object, *user_ids: str) -> tuple[Socket, dict]:
    socket = await sockets.connect("/presence", watcher, events=("presence",))  # type: ignore[arg-type]
    ack = await socket.call("presence:subscribe", {"user_ids": list(user_ids)})
    assert ack["ok"], ack
    return socket, ack["data"]


async def _last_seen_in_db(services: RunServices, user_id: str) -> datetime | None:
    conn = await asyncpg.connect(services.database_url)
    try:
        value: datetime | None = await conn.fetchval(
            "select last_seen_at from users where id = $1", user_id
        )
        return value
    finally:
        await conn.close()


async def test_a_second_device_does_not_announce_online_again(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    watcher, data = await _watch(sockets, fan, creator.id)
    assert data == {"items": [{"user_id": creator.id, "status": "offline", "last_seen": None}]}

    phone = await sockets.connect("/chat", creator)
    [online] = await watcher.wait_for("presence")
    assert online == {"user_id": creator.id, "status": "online", "last_seen": None}
    laptop = await sockets.connect("/presence", creator)
    await phone.disconnect()
    await watcher.assert_nothing("presence", within=DEBOUNCE + 0.5)

    await laptop.disconnect()
    events = await watcher.wait_for("presence", 2, timeout=DEBOUNCE + 3)
    offline = events[1]
    assert offline["user_id"] == creator.id and offline["status"] == "offline"
    assert offline["last_seen"] is not None
    stored = await _last_seen_in_db(services, creator.id)
    assert (
        stored is not None
        and stored.isoformat() == datetime.fromisoformat(offline["last_seen"]).isoformat()
    )

    again = await watcher.call("presence:subscribe", {"user_ids": [creator.id]})
    assert again["data"]["items"] == [offline]


async def test_a_socket_that_drops_and_returns_within_the_debounce_makes_no_noise(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id, status="trialing")
    device = await sockets.connect("/chat", creator)
    watcher, data = await _watch(sockets, fan, creator.id)
    assert data["items"][0]["status"] == "online"

    await device.disconnect()
    await asyncio.sleep(DEBOUNCE / 3)
    await sockets.connect("/chat", creator)
    await watcher.assert_nothing("presence", within=DEBOUNCE + 0.7)


async def test_away_and_back_are_announced_once_each(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    device = await sockets.connect("/presence", creator)
    watcher, _ = await _watch(sockets, fan, creator.id)

    ack = await device.call("presence:set", {"status": "away"})
    assert ack == {"ok": True, "data": {"user_id": creator.id, "status": "away", "last_seen": None}}
    [away] = await watcher.wait_for("presence")
    assert away["status"] == "away"
    assert (await device.call("presence:set", {"status": "away"}))["ok"]
    await sockets.connect("/chat", creator)
    await watcher.assert_nothing("presence")
    status = await watcher.call("presence:subscribe", {"user_ids": [creator.id]})
    assert status["data"]["items"][0]["status"] == "away"

    assert (await device.call("presence:set", {"status": "online"}))["ok"]
    events = await watcher.wait_for("presence", 2)
    assert events[1] == {"user_id": creator.id, "status": "online", "last_seen": None}


async def test_only_related_users_may_be_watched(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    other_fan = await api.register()
    stranger = await api.register(role="creator")
    lapsed = await api.register()
    chat_partner = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    await subscribe(services.database_url, other_fan.id, creator.id)
    await subscribe(services.database_url, lapsed.id, creator.id, status="canceled")
    await share_conversation(services.database_url, fan.id, chat_partner.id)

    fan_socket = await sockets.connect("/presence", fan, events=("presence",))
    allowed = await fan_socket.call(
        "presence:subscribe", {"user_ids": [creator.id, chat_partner.id, fan.id]}
    )
    assert [item["user_id"] for item in allowed["data"]["items"]] == [
        creator.id,
        chat_partner.id,
        fan.id,
    ]

    refused = await fan_socket.call(
        "presence:subscribe",
        {"user_ids": [creator.id, stranger.id, other_fan.id, "no-such-user"]},
    )
    assert refused["ok"] is False
    assert refused["error"]["code"] == "forbidden"
    assert refused["error"]["details"] == {"user_ids": [stranger.id, other_fan.id, "no-such-user"]}

    creator_socket = await sockets.connect("/presence", creator)
    mine = await creator_socket.call("presence:subscribe", {"user_ids": [fan.id, other_fan.id]})
    assert mine["ok"], mine
    lapsed_ack = await creator_socket.call("presence:subscribe", {"user_ids": [lapsed.id]})
    assert lapsed_ack["error"]["code"] == "forbidden"
    lapsed_socket = await sockets.connect("/presence", lapsed)
    back = await lapsed_socket.call("presence:subscribe", {"user_ids": [creator.id]})
    assert back["error"]["code"] == "forbidden"

    # A refused call watches nothing, not even the ids that were allowed.
    stranger_socket = await sockets.connect("/presence", stranger, events=("presence",))
    await stranger_socket.call("presence:subscribe", {"user_ids": [stranger.id, creator.id]})
    await stranger_socket.call("presence:set", {"status": "away"})
    await sockets.connect("/chat", creator)
    await stranger_socket.assert_nothing("presence")


async def test_at_most_500_ids_per_call(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    socket = await sockets.connect("/presence", fan)
    ids = [str(uuid.uuid4()) for _ in range(501)]
    too_many = await socket.call("presence:subscribe", {"user_ids": ids})
    assert too_many["ok"] is False and too_many["error"]["code"] == "invalid"
    assert too_many["error"]["details"][0]["field"] == "user_ids"
    at_limit = await socket.call("presence:subscribe", {"user_ids": ids[:500]})
    assert at_limit["error"]["code"] == "forbidden"
    assert len(at_limit["error"]["details"]["user_ids"]) == 500
    unwatch = await socket.call("presence:unsubscribe", {"user_ids": ids})
    assert unwatch["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("presence:subscribe", {}),
        ("presence:subscribe", {"user_ids": "u1"}),
        ("presence:subscribe", {"user_ids": [1, 2]}),
        ("presence:subscribe", {"user_ids": [""]}),
        ("presence:subscribe", {"user_ids": [None]}),
        ("presence:subscribe", {"user_ids": ["x" * 256]}),
        ("presence:subscribe", {"user_ids": [], "also": True}),
        ("presence:subscribe", ["u1"]),
        ("presence:subscribe", "u1"),
        ("presence:unsubscribe", {"user_ids": 3}),
        ("presence:set", {}),
        ("presence:set", {"status": "offline"}),
        ("presence:set", {"status": "busy"}),
        ("presence:set", {"status": None}),
    ],
)
async def test_bad_payloads_are_invalid(
    api: Api, sockets: Sockets, event: str, payload: object
) -> None:
    fan = await api.register()
    socket = await sockets.connect("/presence", fan)
    ack = await socket.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack


async def test_an_empty_list_watches_nobody(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    socket = await sockets.connect("/presence", fan)
    assert await socket.call("presence:subscribe", {"user_ids": []}) == {
        "ok": True,
        "data": {"items": []},
    }


async def test_unsubscribe_and_disconnect_stop_the_events(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    watcher, _ = await _watch(sockets, fan, creator.id)
    phone, _ = await _watch(sockets, fan, creator.id)
    device = await sockets.connect("/presence", creator)
    await watcher.wait_for("presence")
    await phone.wait_for("presence")

    ack = await watcher.call("presence:unsubscribe", {"user_ids": [creator.id, creator.id]})
    assert ack == {"ok": True, "data": {"user_ids": [creator.id]}}
    await device.call("presence:set", {"status": "away"})
    [_, away] = await phone.wait_for("presence", 2)
    assert away["status"] == "away"
    await watcher.assert_nothing("presence")

    await phone.disconnect()
    await device.call("presence:set", {"status": "online"})
    await watcher.assert_nothing("presence")


async def test_a_socket_whose_transport_vanished_does_not_keep_its_user_online(
    api: Api, sockets: Sockets, services: RunServices, server: TestServer
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    watcher, _ = await _watch(sockets, fan, creator.id)
    # What python-socketio leaves behind when a transport closes during the connect handler.
    tracker = server.app[RUNTIME].presence
    assert tracker is not None
    tracker.socket_opened("/chat", "ghost-sid", creator.id)
    [online] = await watcher.wait_for("presence")
    assert online["status"] == "online"
    tracker.audit()
    [_, offline] = await watcher.wait_for("presence", 2, timeout=DEBOUNCE + 3)
    assert offline["status"] == "offline"


async def test_flipping_status_too_fast_is_rate_limited(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    socket = await sockets.connect("/presence", fan)
    acks = [
        await socket.call("presence:set", {"status": "away" if n % 2 else "online"})
        for n in range(11)
    ]
    assert all(ack["ok"] for ack in acks[:10])
    assert acks[10]["error"]["code"] == "rate_limited"
    assert acks[10]["error"]["details"]["retry_after_ms"] > 0


def test_a_node_ttl_must_outlast_the_heartbeat() -> None:
    with pytest.raises(ValidationError, match="PRESENCE_NODE_TTL_SECONDS"):
        Settings(presence_heartbeat_seconds=5, presence_node_ttl_seconds=5)
    defaults = Settings()
    # A dead node is noticed by the survivors within TTL + one heartbeat: under 30 s.
    assert defaults.presence_node_ttl_seconds + defaults.presence_heartbeat_seconds < 30
    assert defaults.presence_offline_debounce_seconds == 5


async def test_a_single_node_stores_last_seen_when_it_shuts_down(
    settings: Settings, services: RunServices
) -> None:
    patient = settings.model_copy(update={"presence_offline_debounce_seconds": 600})
    node = TestServer(create_app(patient), host="127.0.0.1")
    await node.start_server()
    opened = Sockets(str(node.make_url("")).rstrip("/"))
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(str(node.make_url("")), session).register()
        socket = await opened.connect("/chat", fan)
        await socket.disconnect()
        assert await _last_seen_in_db(services, fan.id) is None
    finally:
        await opened.close_all()
        await node.close()
    assert await _last_seen_in_db(services, fan.id) is not None


async def test_a_change_already_superseded_is_not_announced(
    api: Api, sockets: Sockets, services: RunServices, server: TestServer
) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    await sockets.connect("/chat", creator)
    watcher, data = await _watch(sockets, fan, creator.id)
    assert data["items"][0]["status"] == "online"
    tracker = server.app[RUNTIME].presence
    assert tracker is not None
    # An offline decided before the creator came back, emitted late (say, by a slow node).
    stale = Change(creator.id, "offline", 0, datetime.now(UTC))
    await tracker.announce([stale])
    await watcher.assert_nothing("presence")


async def test_opening_a_conversation_lets_both_sides_watch_each_other(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    friend = await api.register()
    fan_presence = await sockets.connect("/presence", fan, events=("presence",))
    before = await fan_presence.call("presence:subscribe", {"user_ids": [friend.id]})
    assert before["error"]["code"] == "forbidden"

    chat = await sockets.connect("/chat", fan)
    opened = await chat.call("conversation:open", {"participant_ids": [friend.id]})
    assert opened["ok"], opened
    after = await fan_presence.call("presence:subscribe", {"user_ids": [friend.id]})
    assert after["data"]["items"][0]["status"] == "offline"
    friend_presence = await sockets.connect("/presence", friend)
    [online] = await fan_presence.wait_for("presence")
    assert online["user_id"] == friend.id and online["status"] == "online"
    back = await friend_presence.call("presence:subscribe", {"user_ids": [fan.id]})
    assert back["data"]["items"][0]["status"] == "online"
