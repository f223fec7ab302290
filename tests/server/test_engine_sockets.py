"""Loop-owned Engine.IO websockets keep the protocol: pings, timeouts, frames, polling, upgrades.

Most tests speak Engine.IO frames themselves (aiohttp's websocket client, or raw TCP for frames
no well-behaved client would send), so that they control pongs and see exactly what the server
writes. Every test runs on asyncio's loop and on uvloop (tests/server/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.engine_sockets import LeanSocket
from backchannel.server.keys import SIO
from backchannel.server.settings import Settings
from tests.support import Api, User

# Whole seconds: python-engineio advertises int(ping_interval) * 1000 ms to clients.
PING_INTERVAL, PING_TIMEOUT = 1.0, 0.5


@dataclass
class Node:
    """A running server with short pings, and a registered user to connect as."""

    server: TestServer
    url: str
    session: aiohttp.ClientSession
    user: User

    @property
    def sio(self) -> socketio.AsyncServer:
        return self.server.app[SIO]


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    configured = settings.model_copy(
        update={
            "ping_interval_seconds": PING_INTERVAL,
            "ping_timeout_seconds": PING_TIMEOUT,
            "max_socket_message_bytes": 4096,
        }
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        user = await Api(url, session).register()
        yield Node(server, url, session, user)
    await server.close()


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait until `condition()` is true, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- an Engine.IO client that decides when to answer pings --------------------------------


@dataclass
class EioClient:
    """Engine.IO v4 over aiohttp's websocket client, one namespace connected."""

    ws: aiohttp.ClientWebSocketResponse
    answer_pings: bool = True
    pings: list[float] = field(default_factory=list)
    messages: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    closed_at: float | None = None
    sid: str = ""
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, node: Node, namespace: str = "/chat") -> EioClient:
        ws = await node.session.ws_connect(f"{node.url}/socket.io/?EIO=4&transport=websocket")
        opening = await ws.receive_str()
        assert opening.startswith("0{")
        client = cls(ws)
        client._reader = asyncio.create_task(client._read())
        await ws.send_str(f"40{namespace},{json.dumps({'token': node.user.access_token})}")
        reply = await asyncio.wait_for(client.messages.get(), 5)
        assert reply.startswith(f"0{namespace},"), reply
        client.sid = json.loads(reply.split(",", 1)[1])["sid"]
        return client

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            if msg.data == "2":
                self.pings.append(loop.time())
                if self.answer_pings:
                    await self.ws.send_str("3")
            else:
                await self.messages.put(msg.data[1:])  # the Socket.IO packet
        self.closed_at = loop.time()

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


async def test_idle_websockets_hold_no_task_each(node: Node) -> None:
    before = len(asyncio.all_tasks())
    clients = [await EioClient.connect(node) for _ in range(20)]
    await asyncio.sleep(0.1)
    # Each client here has one reader task of its own (in this test process); the server side
    # used to add four or more per socket (request handler, Engine.IO reader, writer, ping).
    assert len(asyncio.all_tasks()) - before <= len(clients) + 2
    sockets = list(node.sio.eio.sockets.values())
    assert len(sockets) == 20
    assert all(isinstance(s, LeanSocket) and s.conn is not None for s in sockets)
    assert node.server.runner is not None and node.server.runner.server is not None
    assert node.server.runner.server.connections == []  # aiohttp let go of them
    for client in clients:
        await client.close()
    await until(lambda: not node.sio.eio.sockets)


async def test_pings_come_every_interval_while_the_client_answers(node: Node) -> None:
    client = await EioClient.connect(node)
    await asyncio.sleep(3 * (PING_INTERVAL + PING_TIMEOUT))
    assert client.closed_at is None
    assert node.sio.manager.is_connected(client.sid, "/chat")
    gaps = [b - a for a, b in zip(client.pings, client.pings[1:], strict=False)]
    assert len(client.pings) >= 4
    assert all(PING_INTERVAL - 0.02 <= gap <= PING_INTERVAL + 0.3 for gap in gaps), gaps
    await client.close()


async def test_a_client_that_stops_answering_pings_is_disconnected(node: Node) -> None:
    client = await EioClient.connect(node)
    await until(lambda: len(client.pings) >= 2)
    client.answer_pings = False
    last_pong = client.pings[-1]
    await until(lambda: client.closed_at is not None, timeout=5)
    assert client.closed_at is not None
    took = client.closed_at - last_pong
    # Next ping after the interval, then the timeout, then up to a timer bucket each.
    assert PING_INTERVAL + PING_TIMEOUT - 0.05 <= took <= PING_INTERVAL + PING_TIMEOUT + 0.6
    await until(lambda: not node.sio.manager.is_connected(client.sid, "/chat"))
    assert not node.sio.eio.sockets


async def test_a_client_closing_its_websocket_disconnects_its_socket(node: Node) -> None:
    client = await EioClient.connect(node)
    await client.close()
    await until(lambda: not node.sio.manager.is_connected(client.sid, "/chat"))
    assert not node.sio.eio.sockets


async def test_a_server_disconnect_sends_close_and_ends_the_websocket(node: Node) -> None:
    client = await EioClient.connect(node)
    [eio_sid] = node.sio.eio.sockets
    await node.sio.eio.disconnect(eio_sid)
    await until(lambda: client.closed_at is not None)
    assert client.ws.close_code == 1000
    assert not node.sio.manager.is_connected(client.sid, "/chat")


# -- long-polling and the upgrade ---------------------------------------------------------


async def _python_client(node: Node, transports: list[str]) -> tuple[socketio.AsyncClient, list]:
    client = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    client.on("hello", got.append, namespace="/chat")
    await client.connect(
        node.url,
        namespaces=["/chat"],
        auth={"token": node.user.access_token},
        transports=transports,
        wait_timeout=5,
    )
    return client, got


async def test_long_polling_sockets_get_events_acks_and_pings(node: Node) -> None:
    client, got = await _python_client(node, ["polling"])
    try:
        await asyncio.sleep(2 * (PING_INTERVAL + PING_TIMEOUT))  # pings go over polling too
        assert client.connected
        sid = client.get_sid("/chat")
        await node.sio.emit("hello", {"n": 1}, to=sid, namespace="/chat")
        await until(lambda: got == [{"n": 1}])
        ack = await client.call("no:such:event", {}, namespace="/chat", timeout=5)
        assert ack["error"]["code"] == "invalid"
        assert client.transport() == "polling"
    finally:
        await client.disconnect()
    await until(lambda: not node.sio.eio.sockets)


async def test_long_polling_sockets_upgrade_to_a_loop_owned_websocket(node: Node) -> None:
    client, got = await _python_client(node, ["polling", "websocket"])
    try:
        await until(lambda: client.transport() == "websocket")
        [eio_socket] = node.sio.eio.sockets.values()
        await until(lambda: eio_socket.upgraded)
        assert isinstance(eio_socket, LeanSocket) and eio_socket.conn is not None
        await asyncio.sleep(2 * (PING_INTERVAL + PING_TIMEOUT))
        assert client.connected
        await node.sio.emit("hello", {"n": 2}, to=client.get_sid("/chat"), namespace="/chat")
        await until(lambda: got == [{"n": 2}])
        ack = await client.call("no:such:event", {}, namespace="/chat", timeout=5)
        assert ack["error"]["code"] == "invalid"
    finally:
        await client.disconnect()
    await until(lambda: not node.sio.eio.sockets)


async def test_a_long_polling_client_that_goes_away_is_disconnected(node: Node) -> None:
    base = f"{node.url}/socket.io/?EIO=4&transport=polling"
    async with node.session.get(base) as response:
        opening = await response.text()
    sid = json.loads(opening[1:])["sid"]
    connect = f"40/chat,{json.dumps({'token': node.user.access_token})}"
    async with node.session.post(f"{base}&sid={sid}", data=connect) as response:
        assert response.status == 200
    async with node.session.get(f"{base}&sid={sid}") as response:
        assert (await response.text()).startswith("40/chat,")
    started = asyncio.get_running_loop().time()
    # No more polls, so no pongs: the first ping goes unanswered.
    await until(lambda: not node.sio.eio.sockets, timeout=5)
    took = asyncio.get_running_loop().time() - started
    assert took >= PING_INTERVAL + PING_TIMEOUT - 0.1
    assert not node.sio.manager.rooms.get("/chat", {}).get(None)


# -- raw frames ---------------------------------------------------------------------------


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A client frame: masked unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A websocket client over a bare TCP stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node, *, receive_buffer: int | None = None) -> RawSocket:
        port = node.server.port
        assert port is not None
        sock = socket.socket()
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        assert b"Sec-WebSocket-Accept: " + accept + b"\r\n" in head
        raw = cls(reader, writer)
        opcode, opening = await raw.receive()
        assert opcode == 0x1 and opening.startswith(b"0{")
        return raw

    async def receive(self) -> tuple[int, bytes]:
        """The next server frame (servers never mask)."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(size)

    async def send(self, data: bytes, *, bytewise: bool = False) -> None:
        if bytewise:
            for i in range(len(data)):
                self.writer.write(data[i : i + 1])
                await self.writer.drain()
                await asyncio.sleep(0)
        else:
            self.writer.write(data)
            await self.writer.drain()

    async def authenticate(self, node: Node) -> str:
        connect = f"40/chat,{json.dumps({'token': node.user.access_token})}".encode()
        await self.send(frame(0x1, connect))
        while True:
            _opcode, payload = await asyncio.wait_for(self.receive(), 5)
            if payload.startswith(b"40/chat,"):
                return str(json.loads(payload.split(b",", 1)[1])["sid"])

    async def closed_with(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = await asyncio.wait_for(self.receive(), 5)
            if opcode == 0x8:
                assert await asyncio.wait_for(self.reader.read(), 5) == b""  # then TCP closes
                await self.close()
                return int.from_bytes(payload[:2], "big")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def test_fragmented_messages_split_anyhow_are_reassembled(node: Node) -> None:
    raw = await RawSocket.open(node)
    connect = f"40/chat,{json.dumps({'token': node.user.access_token})}".encode()
    third = len(connect) // 3
    message = (
        frame(0x1, connect[:third], fin=False)
        + frame(0x9, b"are you there")  # a ping may come between fragments
        + frame(0x0, connect[third : 2 * third], fin=False)
        + frame(0x0, connect[2 * third :])
    )
    await raw.send(message, bytewise=True)
    assert await asyncio.wait_for(raw.receive(), 5) == (0xA, b"are you there")
    opcode, reply = await asyncio.wait_for(raw.receive(), 5)
    assert opcode == 0x1 and reply.startswith(b"40/chat,{")
    await raw.close()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x1, b"4", mask=False), 1002),  # clients must mask
        (frame(0x1, b"4", rsv=0x40), 1002),  # compression was not negotiated
        (frame(0x0, b"4"), 1002),  # a continuation with nothing to continue
        (frame(0x3, b"4"), 1002),  # a reserved opcode
        (frame(0x9, b"x" * 126), 1002),  # control frames are short
        (frame(0x1, b"4\xff\xfe"), 1007),  # text must be UTF-8
        (frame(0x1, b"4" + b"x" * 5000), 1009),  # over max_socket_message_bytes
        (frame(0x1, b"4" * 3000, fin=False) + frame(0x0, b"4" * 3000), 1009),
    ],
)
async def test_protocol_violations_close_the_websocket_with_their_code(
    node: Node, bad: bytes, code: int
) -> None:
    raw = await RawSocket.open(node)
    await raw.send(bad)
    assert await raw.closed_with() == code
    await until(lambda: not node.sio.eio.sockets)


async def test_a_close_frame_is_answered_and_the_socket_disconnects(node: Node) -> None:
    raw = await RawSocket.open(node)
    sid = await raw.authenticate(node)
    await raw.send(frame(0x8, (1000).to_bytes(2, "big")))
    assert await raw.closed_with() == 1000
    await until(lambda: not node.sio.manager.is_connected(sid, "/chat"))


async def test_a_client_that_reads_slowly_gets_everything_in_order(node: Node) -> None:
    raw = await RawSocket.open(node, receive_buffer=4096)
    sid = await raw.authenticate(node)
    [eio_socket] = node.sio.eio.sockets.values()
    conn = eio_socket.conn
    assert conn is not None
    pad = "x" * 10_000
    sent = 0
    # Until the kernel's buffers are full and the transport pushes back (bounded: 20 MB)...
    while not conn.paused and sent < 2000:
        await node.sio.emit("bulk", {"i": sent, "pad": pad}, to=sid, namespace="/chat")
        sent += 1
    assert conn.paused
    # ... after which packets wait in the queue, in order, for a writer task.
    for _ in range(50):
        await node.sio.emit("bulk", {"i": sent, "pad": pad}, to=sid, namespace="/chat")
        sent += 1
    assert eio_socket.queue.qsize() > 0
    assert eio_socket.idle_transport() is None  # broadcasts must not overtake the queue
    seen = []
    while len(seen) < sent:
        _opcode, payload = await asyncio.wait_for(raw.receive(), 10)
        if payload.startswith(b'42/chat,["bulk"'):
            seen.append(json.loads(payload.split(b",", 1)[1])[1]["i"])
    assert seen == list(range(sent))
    await until(lambda: eio_socket.idle_transport() is not None)
    await raw.close()
