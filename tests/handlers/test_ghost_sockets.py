"""A socket whose transport closes while it connects leaves nothing behind (issue #13, item 6).

python-socketio skips the disconnect of a socket whose connect handler is still running, so
anything the handler registered for it would stay: the user would look connected to `/chat`
(their message notifications suppressed), online, and in their rooms, until the token expired.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import asyncpg
import pytest

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace, user_room
from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.settings import Settings
from backchannel.server.socket_sweep import sweep_once
from tests.chat_support import Node, node, open_dm
from tests.nodes import eventually
from tests.raw_socketio import RawSocketIO
from tests.services import RunServices
from tests.support import User


def _chat(n: Node) -> AuthenticatedNamespace:
    handler = n.server.app[SIO].namespace_handlers["/chat"]
    assert isinstance(handler, AuthenticatedNamespace)
    return handler


def _connects(n: Node, outcome: str) -> float:
    value = n.server.app[RUNTIME].metrics.registry.get_sample_value(
        "backchannel_socket_connects_total", {"namespace": "/chat", "outcome": outcome}
    )
    return value or 0.0


async def _nothing_left_for(n: Node, fan: User, bell_sid: str) -> None:
    """No trace of a `/chat` socket of `fan` on this node, nor in the cluster-wide counts."""
    runtime = n.server.app[RUNTIME]
    manager = n.server.app[SIO].manager
    chat = _chat(n)
    assert fan.id not in chat._live.values()
    # Only the creator's socket still has expiry timers.
    assert len(chat._expiries) == len(chat._warnings) == 1
    assert list(manager.get_participants("/chat", user_room(fan.id))) == []
    presence = runtime.presence
    assert presence is not None
    assert [key for key, uid in presence._sockets.items() if uid == fan.id] == [
        ("/notifications", bell_sid)
    ]
    assert presence._local.get(fan.id) == 1  # the bell only
    assert runtime.socket_counts is not None
    assert await runtime.socket_counts.with_open(Namespace.CHAT, [fan.id]) == set()
    assert (
        runtime.metrics.registry.get_sample_value(
            "backchannel_socket_connections", {"namespace": "/chat"}
        )
        == 1.0
    )  # the creator's


async def _a_message_notifies(n: Node, creator_chat: Any, bell: Any, conversation_id: str) -> None:
    ack = await creator_chat.call(
        "message:send", {"conversation_id": conversation_id, "client_id": "c1", "body": "hi"}
    )
    assert ack["ok"], ack
    (live,) = await bell.wait_for("notification")
    assert live["type"] == "message" and live["body"] == "hi"


async def _waiting_on_the_lock(services: RunServices) -> bool:
    conn = await asyncpg.connect(services.database_url)
    try:
        waiting = await conn.fetchval(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
            " and query like '%from subscriptions%'"
        )
    finally:
        await conn.close()
    return bool(waiting)


@pytest.fixture(params=["memory", "redis"])
def counted_settings(
    settings: Settings, services: RunServices, request: pytest.FixtureRequest
) -> Settings:
    """Socket counts and presence in this process, or in Redis as a cluster keeps them."""
    if request.param == "memory":
        return settings
    return settings.model_copy(update={"redis_url": services.redis_url})


async def test_a_socket_dropped_mid_connect_leaves_no_counts_rooms_presence_or_silence(
    counted_settings: Settings, services: RunServices
) -> None:
    async with node(counted_settings) as n:
        creator = await n.api.register(role="creator")
        fan = await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        bell = await n.sockets.connect("/notifications", fan, events=("notification",))
        creator_chat = await n.sockets.connect("/chat", creator)
        sio = n.server.app[SIO]
        before = set(sio.eio.sockets)
        ended = _connects(n, "ok") + _connects(n, "gone")

        # Hold the connect handler where it has entered the user room and awaits Postgres
        # (the fan's subscriber rooms), the way a slow database holds it.
        holder = await asyncpg.connect(services.database_url)
        try:
            async with holder.transaction(), aiohttp.ClientSession() as session:
                await holder.execute("lock table subscriptions in access exclusive mode")
                raw = await RawSocketIO.open(session, n.server.make_url("").human_repr()[:-1])
                (eio_sid,) = set(sio.eio.sockets) - before
                await raw.send(f"0/chat,{json.dumps({'token': fan.access_token})}")
                await eventually(
                    lambda: _waiting_on_the_lock(services),
                    what="connect handler waiting on Postgres",
                )
                assert list(sio.manager.get_participants("/chat", user_room(fan.id)))
                await raw.close()
                await eventually(lambda: eio_sid not in sio.eio.sockets, what="transport gone")
        finally:
            await holder.close()
        await eventually(
            lambda: _connects(n, "ok") + _connects(n, "gone") > ended,
            what="the connect handler ending",
        )
        await _nothing_left_for(n, fan, bell.client.get_sid("/notifications"))
        assert _connects(n, "gone") == 1
        await _a_message_notifies(n, creator_chat, bell, conversation_id)


async def test_the_sweep_drops_a_socket_whose_transport_vanished_without_a_disconnect(
    settings: Settings,
) -> None:
    async with node(settings, socket_sweep_seconds=3600) as n:
        creator = await n.api.register(role="creator")
        fan = await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        bell = await n.sockets.connect("/notifications", fan, events=("notification",))
        creator_chat = await n.sockets.connect("/chat", creator)
        sio = n.server.app[SIO]
        before = set(sio.eio.sockets)
        await n.sockets.connect("/chat", fan)
        (eio_sid,) = set(sio.eio.sockets) - before
        # What python-socketio leaves when the transport closes between the connect handler's
        # end and the socket being marked connected: the manager holds a sid whose Engine.IO
        # socket is gone, and no disconnect event ever comes.
        del sio.eio.sockets[eio_sid]

        assert await sweep_once(n.server.app) == 2  # the registration, and the manager's sid
        await _nothing_left_for(n, fan, bell.client.get_sid("/notifications"))
        assert await sweep_once(n.server.app) == 0  # undone exactly once
        await _a_message_notifies(n, creator_chat, bell, conversation_id)
