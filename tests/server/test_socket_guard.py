"""Packets the libraries would mishandle are answered `invalid`, and idle transports are bounded.

Each test reproduces a finding of the hostile-input review (issue 20) with raw Socket.IO text
over a real websocket, and shows the server answering it as the contract says.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
import socketio
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.keys import SIO
from backchannel.server.settings import Settings
from backchannel.server.socket_guard import check_library
from tests.chat_support import open_dm
from tests.conftest import TEST_JWT_SECRET
from tests.raw_socketio import RawSocketIO
from tests.services import RunServices
from tests.support import Api, Sockets, User


def _token(sub: str, *, ttl: int = 60) -> str:
    now = int(time.time())
    claims = {"sub": sub, "type": "access", "iat": now, "exp": now + ttl}
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


@dataclass
class Node:
    """A server with a short namespace-connect deadline and a small per-IP cap."""

    server: TestServer
    url: str
    session: aiohttp.ClientSession
    api: Api

    @property
    def sio(self) -> Any:
        return self.server.app[SIO]


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    configured = settings.model_copy(
        update={"connect_deadline_seconds": 1.0, "max_unauthenticated_per_ip": 3}
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        yield Node(server, url, session, Api(url, session))
    await server.close()


async def _chat(node: Node, user: User, *, ttl: int = 60) -> RawSocketIO:
    return await RawSocketIO.connect(node.session, node.url, "/chat", _token(user.id, ttl=ttl))


def _invalid(ack: Any) -> dict[str, Any]:
    assert isinstance(ack, dict) and ack["ok"] is False, ack
    assert ack["error"]["code"] == "invalid", ack
    return dict(ack["error"])


# -- reserved and malformed event names ---------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "connect",
        "disconnect",
        "connect_error",
        "disconnecting",
        "*",
        "",
        "x" * 65,
        "a\u0000b",
        5,
        None,
        ["conversation:list"],
        {"event": "conversation:list"},
    ],
)
async def test_reserved_and_malformed_event_names_are_answered_invalid(
    node: Node, name: Any
) -> None:
    user = await node.api.register()
    raw = await _chat(node, user)
    error = _invalid(await raw.call("/chat", name, {}))
    assert error["details"][0]["field"] == "(event)"
    # The socket carries on: a real event is still answered.
    assert (await raw.call("/chat", "conversation:list", {}))["ok"] is True
    await raw.close()


async def test_an_event_named_disconnect_cannot_cancel_the_token_expiry(node: Node) -> None:
    user = await node.api.register()
    raw = await _chat(node, user, ttl=2)
    _invalid(await raw.call("/chat", "disconnect", {}))
    await raw.next(lambda p: p.startswith('2/chat,["session:expired"'), timeout=6)
    await raw.next(lambda p: p.startswith("1/chat"))  # and the namespace is disconnected
    await raw.close()


async def test_a_socket_cannot_authenticate_again_as_someone_else(
    node: Node, sockets: Sockets
) -> None:
    first, other, third = [await node.api.register() for _ in range(3)]
    sockets.base_url = node.url
    others_dm = await open_dm(sockets, other, third)
    raw = await _chat(node, first)
    # A client event named `connect` carrying another user's token...
    _invalid(await raw.call("/chat", "connect", {"token": other.access_token}))
    # ... and a second CONNECT packet for the same namespace are both refused.
    reply = await raw.connect_namespace("/chat", other.access_token)
    assert reply.startswith("4/chat,"), reply
    assert json.loads(reply.split(",", 1)[1])["data"]["code"] == "invalid"
    listed = await raw.call("/chat", "conversation:list", {})
    assert listed["ok"] is True
    assert others_dm not in json.dumps(listed["data"])
    await raw.close()


# -- payloads no model should see ---------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("what", "body", "field"),
    [
        ("nested 3,000 levels", f'["conversation:list",{_nested(3000)}]', "(packet)"),
        ("nested 40 levels", f'["conversation:list",{_nested(40)}]', "payload.0"),
        ("a NUL character", '["message:send",{"client_id":"a\\u0000"}]', "payload.0.client_id"),
        ("a lone surrogate", '["message:send",{"body":"\\ud800"}]', "payload.0.body"),
        (
            "an integer past 64 bits",
            '["messages:sync",{"after_seq":9223372036854775808}]',
            "payload.0.after_seq",
        ),
        ("not JSON", '["conversation:list",{', "(packet)"),
    ],
)
async def test_payloads_that_cannot_be_stored_are_acked_invalid(
    node: Node, what: str, body: str, field: str
) -> None:
    user = await node.api.register()
    raw = await _chat(node, user)
    error = _invalid(await raw.emit_raw("/chat", body))
    if field:
        assert error["details"][0]["field"].startswith(field), (what, error)
    assert (await raw.call("/chat", "conversation:list", {}))["ok"] is True
    await raw.close()


async def test_a_connect_whose_auth_cannot_be_decoded_is_refused_invalid(node: Node) -> None:
    user = await node.api.register()
    raw = await RawSocketIO.open(node.session, node.url)
    await raw.send("0/chat," + "[" * 3000 + "]" * 3000)
    reply = await raw.next(lambda p: p.startswith("4/chat,"))
    assert json.loads(reply.split(",", 1)[1])["data"]["code"] == "invalid"
    # The connection carries on: a readable connect still works.
    assert (await raw.connect_namespace("/chat", user.access_token)).startswith("0/chat,")
    await raw.close()


async def test_binary_events_are_refused_without_eating_the_next_packets(node: Node) -> None:
    user = await node.api.register()
    raw = await _chat(node, user)
    # A header announcing one attachment, which never comes (and then one that does).
    await raw.send('51-/chat,7["conversation:list",{"_placeholder":true,"num":0}]')
    reply = await raw.next(lambda p: p.startswith("3/chat,7["))
    assert json.loads(reply[len("3/chat,7") :])[0]["error"]["code"] == "invalid"
    await raw.ws.send_bytes(b"\x01\x02")
    assert (await raw.call("/chat", "conversation:list", {}))["ok"] is True
    await raw.close()


async def test_an_event_on_a_namespace_not_connected_is_acked_unauthorized(node: Node) -> None:
    user = await node.api.register()
    raw = await _chat(node, user)
    ack = await raw.call("/ppv", "unlock", {})
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized", ack
    await raw.close()


# -- transports that never connect a namespace --------------------------------------------


async def test_a_transport_that_connects_no_namespace_is_closed_at_the_deadline(
    node: Node,
) -> None:
    user = await node.api.register()
    idle = await RawSocketIO.open(node.session, node.url)
    authenticated = await _chat(node, user)
    started = time.monotonic()
    await asyncio.wait_for(idle.closed.wait(), 5)
    assert 0.8 <= time.monotonic() - started <= 4
    assert node.sio.unauthenticated_transports() == 0
    # The one that connected a namespace is still there, past the deadline.
    await asyncio.sleep(0.3)
    assert (await authenticated.call("/chat", "conversation:list", {}))["ok"] is True
    await authenticated.close()


async def test_a_connect_asked_in_time_is_answered_even_when_the_answer_takes_longer(
    node: Node, services: RunServices
) -> None:
    # In a reconnect storm the connect handler can wait on the database for longer than the
    # deadline; the client asked in time, so it must get its answer, not a closed transport.
    user = await node.api.register()
    holder = await asyncpg.connect(services.database_url)
    try:
        async with holder.transaction():
            await holder.execute("lock table subscriptions in access exclusive mode")
            raw = await RawSocketIO.open(node.session, node.url)
            before = len(raw.packets)
            await raw.send(f"0/chat,{json.dumps({'token': user.access_token})}")
            await asyncio.sleep(2.0)  # twice the deadline, the handler held on the lock
            assert not raw.closed.is_set()
        reply = await raw.next(lambda p: p.startswith(("0/chat,", "4/chat,")), after=before)
    finally:
        await holder.close()
    assert reply.startswith("0/chat,"), reply
    assert node.sio.unauthenticated_transports() == 0
    assert (await raw.call("/chat", "conversation:list", {}))["ok"] is True
    await raw.close()


async def test_a_refused_connect_gets_a_fresh_deadline_not_an_open_transport_forever(
    node: Node,
) -> None:
    raw = await RawSocketIO.open(node.session, node.url)
    reply = await raw.connect_namespace("/chat", "not-a-token")
    assert reply.startswith("4/chat,"), reply
    await asyncio.wait_for(raw.closed.wait(), 5)  # the deadline, counted again from the refusal
    assert node.sio.unauthenticated_transports() == 0


async def test_one_ip_may_hold_only_a_few_transports_that_connect_no_namespace(
    node: Node,
) -> None:
    user = await node.api.register()
    idle = [await RawSocketIO.open(node.session, node.url) for _ in range(3)]
    assert node.sio.unauthenticated_transports("127.0.0.1") == 3
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await RawSocketIO.open(node.session, node.url)
    assert refused.value.status == 401
    # Connecting a namespace frees a place.
    assert (await idle[0].connect_namespace("/chat", user.access_token)).startswith("0/chat,")
    assert node.sio.unauthenticated_transports("127.0.0.1") == 2
    again = await RawSocketIO.open(node.session, node.url)
    for raw in (*idle, again):
        await raw.close()


# -- the library internals the guard relies on ---------------------------------------------


def test_the_guard_refuses_to_start_on_a_socketio_without_the_methods_it_overrides(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_library(socketio.AsyncServer)  # the installed release is the one it was written for
    monkeypatch.delattr(socketio.AsyncServer, "_handle_event")
    with pytest.raises(RuntimeError, match="_handle_event"):
        create_app(settings)


def test_the_guard_refuses_to_start_when_a_method_changed_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reshaped(self: Any, eio_sid: str, pkt: Any, extra: Any) -> None: ...

    monkeypatch.setattr(socketio.AsyncServer, "_handle_eio_message", reshaped)
    with pytest.raises(RuntimeError, match="_handle_eio_message"):
        check_library(socketio.AsyncServer)
