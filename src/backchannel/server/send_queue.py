"""Engine.IO's per-socket send queue: light, O(1) at both ends, and capped in bytes.

A socket whose client stops reading keeps accumulating what is sent to it: first in the
kernel, then in the transport's write buffer, then in this queue (only a time limit, the ping
timeout, would end it, and a client that still answers pings at the TCP level but reads
nothing never hits it). Every packet that cannot go out at once passes through here, whatever
the transport (loop-owned websockets, the library's aiohttp websockets, long-polling, and the
recipients a broadcast could not write to directly), so the cap is checked here: when the
queued packets plus what the transport holds unsent pass `send_buffer_bytes`, the socket is
closed with reason `slow_consumer` and what it held is dropped. Its client reconnects and
resyncs as after any other drop. The broadcast fast path (`rooms.fanout`) writes straight to a
transport only while it holds under 64 kB unsent (`_MAX_BUFFERED`, and never while it pushes
back), so those bytes are bounded and counted here, in the transport's buffer, as soon as a
packet has to wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from engineio import packet as eio_packet

from backchannel.rooms.fanout import WS_ATTRIBUTE

log = logging.getLogger(__name__)

# The disconnect reason python-socketio hands the namespaces' disconnect handlers.
SLOW_CONSUMER = "slow_consumer"

# What a packet without a text or bytes payload (OPEN's dict, PING, CLOSE) is counted as.
_SMALL_PACKET = 64

# Compact the list once this many consumed slots lead it and they are over half of it.
_COMPACT_AFTER = 32


def packet_bytes(pkt: eio_packet.Packet | None) -> int:
    """The payload bytes a queued packet will put on the wire (text counted as UTF-8)."""
    if pkt is None:
        return 0
    data = pkt.data
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode())
    if isinstance(data, bytes | bytearray):
        return len(data)
    return _SMALL_PACKET


def transport_of(socket: Any) -> asyncio.Transport | None:
    """The TCP transport a websocket Engine.IO socket writes to, else None (long-polling)."""
    conn = getattr(socket, "conn", None)  # server.engine_sockets: a loop-owned websocket
    if conn is not None:
        transport: asyncio.Transport | None = conn.transport
        return transport
    ws = getattr(socket, WS_ATTRIBUTE, None)  # the library's aiohttp websocket
    writer = getattr(ws, "_writer", None) if ws is not None and not ws.closed else None
    return getattr(writer, "transport", None)


def unsent_bytes(socket: Any) -> int:
    """What the socket's transport holds unsent (its write buffer), 0 without one."""
    transport = transport_of(socket)
    if transport is None or transport.is_closing():
        return 0
    return transport.get_write_buffer_size()


class _Waiters(list[Any]):
    """The futures waiting on a queue: a list with the one deque method asyncio calls.

    At most one writer (or one long-poll) ever waits on a send queue, so popping the head of
    a list of one is as cheap as a deque's, without the deque's ~600 bytes.
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class CappedQueue(asyncio.Queue[Any]):
    """Engine.IO's per-socket send queue: O(1) at both ends and capped in bytes.

    It uses only `asyncio.Queue`'s subclassing hooks (`_init`, `_get`, `_put`, as the standard
    library's `PriorityQueue` does), so it is the queue even when the lighter `LeanQueue` is
    switched off by the start-up self-check (`server.fast_paths`): the cap never depends on a
    fast path. Items are taken from a moving head index (the list is compacted when the taken
    slots are most of it), so a backlog drains in linear time, never quadratic.

    Its class knows the Engine.IO server (`for_server`) and the queue its socket's `sid` (set
    once the socket connects, see `EngineBase`): with them it counts its bytes against the
    server's `send_buffer_bytes` and closes a slow consumer. It holds the sid, not the socket,
    so a socket and its queue form no reference cycle and are freed as soon as it closes.
    """

    sid: str | None = None
    _head = 0
    _bytes = 0
    _tripped = False

    _server: Any = None  # set on the per-server subclass `for_server` makes

    @classmethod
    def for_server(cls, server: Any) -> type[CappedQueue]:
        """The queue class for one Engine.IO server (the server is a class attribute: one
        reference per server, not one per socket)."""
        return type(cls.__name__, (cls,), {"_server": server, "__module__": cls.__module__})

    def _init(self, maxsize: int) -> None:
        self._queue: list[Any] = []

    def qsize(self) -> int:
        """Packets waiting."""
        return len(self._queue) - self._head

    def empty(self) -> bool:
        """Nothing waiting."""
        return len(self._queue) == self._head

    def _get(self) -> Any:
        queue, head = self._queue, self._head
        item = queue[head]
        queue[head] = None
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        elif head > _COMPACT_AFTER and head * 2 > len(queue):
            del queue[:head]
            head = 0
        if head != self._head:  # an idle socket's queue keeps the class's 0: no dict entry
            self._head = head
        if item is not None:
            self._bytes -= packet_bytes(item)
        return item

    def _put(self, item: Any) -> None:
        self._queue.append(item)
        if item is not None:
            self._bytes += packet_bytes(item)

    @property
    def queued_bytes(self) -> int:
        """Payload bytes of the packets waiting here."""
        return self._bytes

    def put_nowait(self, item: Any) -> None:
        """Queue `item`; past the owner's byte cap the socket is closed as a slow consumer."""
        if self._tripped and item is not None:
            return  # closing: nothing more is kept for it (None still wakes a writer)
        super().put_nowait(item)
        if item is None or self.sid is None or self._server is None:
            return
        cap: int = self._server.send_buffer_bytes
        if not cap:
            return
        owner = self._server.sockets.get(self.sid)
        if owner is not None and self._bytes > cap - unsent_bytes(owner):
            self._trip(owner, cap)

    def _trip(self, owner: Any, cap: int) -> None:
        held = self._bytes + unsent_bytes(owner)
        self._tripped = True
        while not self.empty():  # drop the backlog now: this is the memory being bounded
            self.get_nowait()
            self.task_done()
        self._bytes = 0
        log.info("slow consumer disconnected", extra={"sid": owner.sid, "held": held, "cap": cap})
        counted: Callable[[], None] | None = self._server.on_slow_consumer
        if counted is not None:
            counted()
        self._closer = asyncio.ensure_future(self._close_slow(owner))

    async def _close_slow(self, owner: Any) -> None:
        """Disconnect (the namespaces see `slow_consumer`) and drop what is still unsent."""
        await owner.close(wait=False, abort=True, reason=SLOW_CONSUMER)
        transport = transport_of(owner)
        if transport is not None:
            transport.abort()  # what the transport still holds for it goes too
        else:
            self.put_nowait(None)  # long-polling: a pending poll returns now, empty


class LeanQueue(CappedQueue):
    """`CappedQueue`, about 2.4 kB lighter per socket (the `lean_queue` fast path).

    An empty `collections.deque` costs ~600 bytes and an asyncio.Queue holds four (items,
    getters, putters, and its Event's waiters); an idle socket's queue is empty, so plain
    lists serve. This replaces asyncio's private `_getters`, `_putters` and
    `_finished._waiters`, which the self-check verifies first.
    """

    def __init__(self) -> None:
        super().__init__()
        self._getters = _Waiters()
        self._putters = _Waiters()
        self._finished._waiters = []  # type: ignore[attr-defined]
