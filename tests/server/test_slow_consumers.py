"""A client that stops reading is cut off at its send-buffer cap; everyone else keeps receiving.

The slow client is a bare TCP websocket (a tiny receive buffer, and it never reads after
connecting) or a long-polling client that stops polling. What the server holds for it is
measured directly: the packets in its Engine.IO queue plus what its transport has not sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from typing import Any

import aiohttp
import pytest
from engineio import packet as eio_packet

from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.send_queue import LeanQueue, transport_of, unsent_bytes
from backchannel.server.settings import Settings
from tests.chat_support import Node, node
from tests.support import User

CAP = 256 * 1024
BODY = "m" * 3990  # near the longest body: a message:new frame is ~4.4 kB
NEW = ("message:new",)


def _masked_text(payload: bytes) -> bytes:
    """A client's (masked) final text frame."""
    head = bytes([0x81])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    else:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    _first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return await reader.readexactly(size)


async def _stalled_websocket(
    n: Node, user: User
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Connect `user` to /chat over a bare websocket with a 4 kB receive buffer; its eio sid."""
    port = n.server.port
    assert port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    opening = await asyncio.wait_for(_read_frame(reader), 5)
    eio_sid = json.loads(opening[1:])["sid"]
    writer.write(_masked_text(f"40/chat,{json.dumps({'token': user.access_token})}".encode()))
    while not (await asyncio.wait_for(_read_frame(reader), 5)).startswith(b"40/chat,"):
        pass
    return reader, writer, str(eio_sid)


def _small_send_buffer(n: Node, eio_sid: str) -> None:
    """Shrink the kernel's send buffer for the socket (Linux autotunes loopback ones to ~4 MB,
    which would take that much data before the server's own buffers see any)."""
    transport = transport_of(n.server.app[SIO].eio.sockets[eio_sid])
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


def _held(n: Node, eio_sid: str) -> int:
    """What the server holds for the socket: queued packet bytes plus unsent transport bytes."""
    eio_socket = n.server.app[SIO].eio.sockets.get(eio_sid)
    if eio_socket is None:
        return 0
    queue = eio_socket.queue
    assert isinstance(queue, LeanQueue)
    return queue.queued_bytes + unsent_bytes(eio_socket)


async def _group(n: Node, creator: User, fans: list[User]) -> tuple[Any, str]:
    chat = await n.sockets.connect("/chat", creator)
    ack = await chat.call("conversation:open", {"participant_ids": [f.id for f in fans]})
    assert ack["ok"], ack
    return chat, str(ack["data"]["id"])


async def _broadcast(
    n: Node, chat: Any, conversation_id: str, count: int, eio_sid: str
) -> tuple[int, int]:
    """Send `count` messages, 10 at a time; the most the server held for `eio_sid`, and
    how many had been acked when it stopped holding anything (it was cut off)."""
    most, cut_at = 0, 0
    for start in range(0, count, 10):
        acks = await asyncio.gather(
            *(
                chat.call(
                    "message:send",
                    {
                        "conversation_id": conversation_id,
                        "client_id": f"m{i}",
                        "body": f"{i} {BODY}",
                    },
                    timeout=20,
                )
                for i in range(start, min(count, start + 10))
            )
        )
        assert all(a["ok"] for a in acks), acks
        held = _held(n, eio_sid)
        most = max(most, held)
        if not cut_at and eio_sid not in n.server.app[SIO].eio.sockets:
            cut_at = start + 10
    return most, cut_at


def _slow_consumer_count(n: Node) -> float:
    value = n.server.app[RUNTIME].metrics.registry.get_sample_value(
        "backchannel_slow_consumer_disconnects_total"
    )
    return value or 0.0


@pytest.mark.parametrize("lean_websockets", [True, False], ids=["lean", "library-websocket"])
async def test_a_reader_that_stops_reading_is_cut_off_at_the_cap_while_others_get_everything(
    settings: Settings, caplog: pytest.LogCaptureFixture, lean_websockets: bool
) -> None:
    caplog.set_level(logging.INFO, logger="backchannel.server.send_queue")
    async with node(
        settings,
        socket_send_buffer_bytes=CAP,
        lean_websockets=lean_websockets,
        message_rate_limit="100000/1s",
        socket_event_rate_limit="100000/1s",
    ) as n:
        creator = await n.api.register("creator")
        slow, *readers = [await n.api.register() for _ in range(3)]
        chat, conversation_id = await _group(n, creator, [slow, *readers])
        healthy = [await n.sockets.connect("/chat", r, events=NEW) for r in readers]
        _reader, writer, eio_sid = await _stalled_websocket(n, slow)
        sio = n.server.app[SIO]
        _small_send_buffer(n, eio_sid)

        count = 200  # ~880 kB for the stalled socket, over three times its cap
        most, cut_at = await _broadcast(n, chat, conversation_id, count, eio_sid)

        # Cut off, once, with the reason on record, and never holding much more than the cap
        # (one message frame past it at most: the packet that crossed it).
        assert cut_at, "the stalled socket was never disconnected"
        assert eio_sid not in sio.eio.sockets
        assert _slow_consumer_count(n) == 1
        assert any(r.getMessage() == "slow consumer disconnected" for r in caplog.records)
        assert most <= CAP + 8 * 1024, most
        # Everyone who reads got every message, in the conversation's order.
        for socket_ in healthy:
            got = await socket_.wait_for("message:new", count, timeout=20)
            assert sorted(int(m["body"].split()[0]) for m in got) == list(range(count))
            assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)
        writer.close()


async def test_a_long_polling_client_that_stops_polling_is_cut_off_at_the_cap(
    settings: Settings,
) -> None:
    async with node(
        settings,
        socket_send_buffer_bytes=CAP,
        message_rate_limit="100000/1s",
        socket_event_rate_limit="100000/1s",
    ) as n:
        creator = await n.api.register("creator")
        slow, reader = await n.api.register(), await n.api.register()
        chat, conversation_id = await _group(n, creator, [slow, reader])
        healthy = await n.sockets.connect("/chat", reader, events=NEW)
        url = f"{n.api.base_url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                eio_sid = json.loads((await response.text())[1:])["sid"]
            polled = f"{url}&sid={eio_sid}"
            connect = f"40/chat,{json.dumps({'token': slow.access_token})}"
            async with session.post(polled, data=connect) as response:
                assert response.status == 200
            async with session.get(polled) as response:
                assert "40/chat," in await response.text()
            # ... and it never polls again: everything for it waits in its queue.
            count = 120  # ~530 kB, twice the cap
            most, cut_at = await _broadcast(n, chat, conversation_id, count, eio_sid)
            assert cut_at, "the idle long-poller was never disconnected"
            assert _slow_consumer_count(n) == 1
            assert most <= CAP + 8 * 1024, most
            async with session.get(polled) as response:
                assert response.status == 400  # the session is gone: the client reconnects
        got = await healthy.wait_for("message:new", count, timeout=20)
        assert len(got) == count


def _drain(n: int) -> float:
    """Seconds to queue n packets and drain them, with puts interleaved in the first half."""
    queue = LeanQueue()
    packets = [eio_packet.Packet(eio_packet.MESSAGE, f"{i:06}") for i in range(n + n // 6)]
    started = time.perf_counter()
    for pkt in packets[:n]:
        queue.put_nowait(pkt)
    assert queue.queued_bytes == 6 * n
    taken = []
    extra = iter(packets[n:])
    while not queue.empty():
        taken.append(queue.get_nowait())
        if len(taken) % 3 == 0 and len(taken) < n // 2:
            queue.put_nowait(next(extra))  # puts interleaved with the drain
    elapsed = time.perf_counter() - started
    assert taken == packets[: len(taken)] and len(taken) > n
    assert queue.qsize() == 0 and queue.queued_bytes == 0
    return elapsed


def test_a_backlog_drains_in_linear_time_in_order() -> None:
    # Compared within this run, not against a wall-clock limit (the machine may be loaded):
    # 8x the backlog costs ~8x when draining is linear, ~64x with list.pop(0).
    small = min(_drain(25_000) for _ in range(3))
    large = min(_drain(200_000) for _ in range(3))
    assert large / small < 24, (small, large)
