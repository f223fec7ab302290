"""Websocket frames cost linear time and are bounded: fragments, control frames, close codes.

The review froze a node without a token: one masked empty text frame with FIN=0 and then
20,000 empty continuation frames (120 kB) re-summed every earlier fragment on each frame and
blocked the event loop for 6 s, `/healthz` included.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.engine_sockets import WebSocketConnection
from backchannel.server.settings import Settings
from tests.server.test_engine_sockets import Node, RawSocket, frame, until
from tests.support import Api

EMPTY_CONTINUATIONS = 20_000


async def _node(settings: Settings, **overrides: Any) -> AsyncIterator[Node]:
    configured = settings.model_copy(update={"max_socket_message_bytes": 4096, **overrides})
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        user = await Api(url, session).register()
        yield Node(server, url, session, user)
    await server.close()


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    async for running in _node(settings):
        yield running


@pytest.fixture
async def roomy(settings: Settings) -> AsyncIterator[Node]:
    """A node that allows far more fragments than any client needs, to time the parser."""
    async for running in _node(settings, max_ws_fragments=100_000):
        yield running


async def _slowest_healthz(node: Node, until_done: asyncio.Future[Any]) -> float:
    """Poll `/healthz` until `until_done` resolves; the slowest answer, in seconds."""
    slowest = 0.0
    while not until_done.done():
        started = time.perf_counter()
        async with node.session.get(f"{node.url}/healthz") as response:
            assert response.status == 200
        slowest = max(slowest, time.perf_counter() - started)
        await asyncio.sleep(0.005)
    return slowest


async def test_twenty_thousand_empty_continuations_cost_linear_time_and_healthz_answers(
    roomy: Node,
) -> None:
    raw = await RawSocket.open(roomy)
    connect = f"40/chat,{json.dumps({'token': roomy.user.access_token})}".encode()
    flood = b"".join(
        [
            frame(0x1, connect, fin=False),
            *(frame(0x0, b"", fin=False) for _ in range(EMPTY_CONTINUATIONS)),
            frame(0x0, b""),
        ]
    )

    async def send_and_wait() -> bytes:
        await raw.send(flood)
        _opcode, reply = await asyncio.wait_for(raw.receive(), 10)
        return reply

    sending = asyncio.ensure_future(send_and_wait())
    slowest = await _slowest_healthz(roomy, sending)
    reply = await sending
    assert reply.startswith(b"40/chat,{")  # the message, reassembled, connected the namespace
    # Quadratic accounting blocked the loop for seconds; linear costs a few milliseconds.
    assert slowest < 0.5, f"/healthz took {slowest:.3f}s during the flood"
    await raw.close()


class _Transport:
    """Just enough of a transport for a WebSocketConnection parsing frames."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closing = True


class _Server:
    max_http_buffer_size = 1_000_000
    max_ws_fragments = 10_000_000


class _Socket:
    server = _Server()

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def packet_received(self, pkt: Any) -> None:
        self.messages.append(pkt)


def _parse_seconds(continuations: int) -> float:
    socket = _Socket()
    conn = WebSocketConnection(socket, _Transport())  # type: ignore[arg-type]
    data = b"".join(
        [
            frame(0x1, b"4", fin=False),
            *(frame(0x0, b"", fin=False) for _ in range(continuations)),
            frame(0x0, b"x"),
        ]
    )
    started = time.perf_counter()
    conn.data_received(data)
    took = time.perf_counter() - started
    assert [p.data for p in socket.messages] == ["x"]
    return took


def test_the_parser_spends_the_same_time_per_empty_continuation_however_many_came_before() -> None:
    small = min(_parse_seconds(20_000) for _ in range(3))
    large = min(_parse_seconds(80_000) for _ in range(3))
    # Four times the frames: about four times the time if linear, sixteen if quadratic.
    assert large < small * 8, (small, large)


async def test_a_message_in_too_many_fragments_is_closed_with_1009(node: Node) -> None:
    raw = await RawSocket.open(node)
    # The first frame and 1,023 continuations are the most one message may arrive in; the
    # next continuation (empty, so far under the byte cap) is one too many. Nothing is sent
    # after it, so the client reads the close frame rather than a reset.
    flood = frame(0x1, b"4", fin=False) + b"".join(frame(0x0, b"", fin=False) for _ in range(1024))
    await raw.send(flood)
    assert await raw.closed_with() == 1009
    await until(lambda: not node.sio.eio.sockets)


@pytest.mark.parametrize(
    ("close_body", "answer"),
    [
        (b"", 1000),
        ((1000).to_bytes(2, "big") + b"bye", 1000),
        ((4000).to_bytes(2, "big"), 1000),  # a private-use code
        (b"\x03", 1002),  # one byte cannot hold a code
        ((999).to_bytes(2, "big"), 1002),
        ((1005).to_bytes(2, "big"), 1002),  # "no status": never sent on the wire
        ((2000).to_bytes(2, "big"), 1002),
        ((1000).to_bytes(2, "big") + b"\xff", 1007),  # the reason must be UTF-8
    ],
)
async def test_a_close_frame_is_answered_per_rfc_6455(
    node: Node, close_body: bytes, answer: int
) -> None:
    raw = await RawSocket.open(node)
    await raw.send(frame(0x8, close_body))
    assert await raw.closed_with() == answer


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x9, b"x", fin=False), 1002),  # control frames are never fragmented
        (frame(0xB, b""), 1002),  # a reserved control opcode
        (frame(0x1, b"4", fin=False) + frame(0x1, b"4"), 1002),  # a new message mid-message
        (frame(0x1, b"4", fin=False) + frame(0x0, b"4" * 4096), 1009),  # the total counts
    ],
)
async def test_fragment_and_control_frame_rules_close_with_their_code(
    node: Node, bad: bytes, code: int
) -> None:
    raw = await RawSocket.open(node)
    await raw.send(bad)
    assert await raw.closed_with() == code


async def test_pings_between_fragments_are_answered_and_the_message_still_arrives(
    node: Node,
) -> None:
    raw = await RawSocket.open(node)
    connect = f"40/chat,{json.dumps({'token': node.user.access_token})}".encode()
    pieces = [connect[i : i + 7] for i in range(0, len(connect), 7)]
    message = b""
    for i, piece in enumerate(pieces):
        opcode = 0x1 if i == 0 else 0x0
        message += frame(opcode, piece, fin=i == len(pieces) - 1)
        message += frame(0x9, b"p%d" % i)
    await raw.send(message)
    pongs = 0
    while True:
        opcode, payload = await asyncio.wait_for(raw.receive(), 5)
        if opcode == 0xA:
            assert payload == b"p%d" % pongs
            pongs += 1
        elif payload.startswith(b"40/chat,"):
            break
    assert pongs >= len(pieces) - 1
    await raw.close()
