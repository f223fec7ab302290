"""Engine.IO websockets that cost no task, timer or HTTP request object while idle.

python-engineio runs every websocket inside the aiohttp request that opened it: the request
handler's task and its whole middleware and Engine.IO call chain stay suspended for the life of
the socket, holding the parsed upgrade request (headers, parser, payload stream), a reader task
waiting with `wait_for`, a writer task waiting on the send queue with another `wait_for`, and a
task sleeping until the next ping: two thirds of the ~33 kB an idle socket cost.

Here, once the websocket handshake is answered, the connection leaves aiohttp: its transport
gets a small protocol object (`WebSocketConnection`) that parses client frames as bytes arrive
and hands Engine.IO packets to the socket, and the request handler returns, releasing the
request. Sending writes the frame straight to the transport; only when the transport pushes
back (or packets are already waiting) does a short-lived task drain the queue, as the library's
writer did. Pings and ping timeouts for all sockets run on two shared timers (`server.timers`).

The protocol is unchanged: the same Engine.IO packets, the same ping/pong rules (a ping every
`ping_interval`, a socket whose pong is `ping_timeout` late is closed), long-polling and the
polling-to-websocket upgrade, the same `connect`/`message`/`disconnect` events, one task per
incoming message as with `async_handlers` (python-socketio's default, which Backchannel keeps).
What python-engineio does per request (CORS, the handshake, the OPEN packet, the connect event)
still runs in python-engineio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import sys
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from engineio.async_socket import AsyncSocket

from backchannel.rooms.fanout import websocket_frame
from backchannel.server.engine_polling import EngineBase
from backchannel.server.timers import DelayQueue

log = logging.getLogger(__name__)

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Close codes (RFC 6455 section 7.4.1).
NORMAL, PROTOCOL_ERROR, INVALID_DATA, TOO_BIG = 1000, 1002, 1007, 1009

# A transport holding more than this unsent is slow: leave it to the writer's backpressure.
_MAX_BUFFERED = 64 * 1024

# Upgrade from long-polling: expecting the client's "2probe", then its "5" (UPGRADE).
_PROBE, _UPGRADE = 1, 2


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR `payload` with the repeating 4-byte `mask`, at C speed through big integers."""
    size = len(payload)
    if not size:
        return payload
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


def _control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def _close_frame_error(payload: bytes) -> int:
    """The code to answer a client's close frame with (RFC 6455 5.5.1, 7.4).

    Empty, or a code a peer may send followed by a UTF-8 reason: answered with 1000. A one-byte
    body or a reserved code (1004-1006, 1015, under 1000, 1016-2999) is a protocol error;
    a reason that is not UTF-8 is invalid data.
    """
    if not payload:
        return NORMAL
    if len(payload) == 1:
        return PROTOCOL_ERROR
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1014 or 3000 <= code <= 4999) or code in (1004, 1005, 1006):
        return PROTOCOL_ERROR
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_DATA
    return NORMAL


class WebSocketConnection(asyncio.Protocol):
    """One Engine.IO websocket after its handshake: parses client frames, writes server frames.

    RFC 6455 for a server without extensions: client frames must be masked, reserved bits
    clear, control frames short and unfragmented; a close frame carries nothing, or a valid
    code and a UTF-8 reason; text must be UTF-8; a message, fragmented or not, may not exceed
    the socket's maximum size nor arrive in more than `max_ws_fragments` frames. Any violation
    closes with the matching code. Each frame costs time in proportion to its own size only:
    the size so far of a fragmented message is a running total, so a stream of empty
    continuation frames is linear (it was quadratic) and ends at the fragment cap.
    """

    __slots__ = (
        "_buffer",
        "_drained",
        "_fragment_bytes",
        "_fragments",
        "_opcode",
        "paused",
        "probing",
        "socket",
        "transport",
    )

    def __init__(self, socket: LeanSocket, transport: asyncio.Transport) -> None:
        self.socket: LeanSocket | None = socket
        self.transport: asyncio.Transport | None = transport
        self.paused = False
        self.probing = 0
        self._drained: asyncio.Future[None] | None = None
        self._buffer: bytearray | None = None
        self._fragments: list[bytes] | None = None
        self._fragment_bytes = 0  # the running total of `_fragments`, never re-summed
        self._opcode = 0

    @property
    def open(self) -> bool:
        """Frames can still be written (the connection is neither lost nor closing)."""
        return self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Parse every complete frame in what has arrived; keep the rest for next time."""
        buffer = self._buffer
        if buffer is not None:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        size, pos = len(view), 0
        while size - pos >= 2 and self.open:
            first, second = view[pos], view[pos + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(view[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(view[pos + 2 : pos + 10], "big"), 10
            error = self._check_header(first, second, length)
            if error:
                self.close(error)
                return
            end = pos + header + 4 + length
            if size < end:
                break
            mask = bytes(view[pos + header : pos + header + 4])
            payload = _unmask(bytes(view[pos + header + 4 : end]), mask)
            pos = end
            self._frame(first, payload)
        if not self.open:
            self._buffer = None
        elif pos < size:
            self._buffer = bytearray(view[pos:]) if pos or buffer is None else buffer
        else:
            self._buffer = None

    def eof_received(self) -> bool:
        """The client half-closed: close our side too (returning False lets the loop do it)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone: the Engine.IO socket closes (transport close)."""
        self.transport = None
        self._buffer = self._fragments = None
        self._fragment_bytes = 0
        self._wake_writer()
        socket, self.socket = self.socket, None
        if socket is None:
            return
        if self.probing:
            # An upgrade that never finished: the socket carries on over long-polling.
            socket.upgrading = False
            socket.conn = None
            return
        socket.transport_lost()

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: queue instead of writing."""
        self.paused = True

    def resume_writing(self) -> None:
        """The buffer drained: direct writes may resume and a waiting writer continues."""
        self._wake_writer()

    # -- writing --------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """Write one ready frame (nothing once the connection is closing or gone)."""
        if self.open:
            self.transport.write(frame)  # type: ignore[union-attr]

    def send_packet(self, pkt: eio_packet.Packet) -> None:
        """Encode one Engine.IO packet as a websocket frame and write it."""
        self.write(websocket_frame(pkt.encode()))

    async def writable(self) -> None:
        """Wait until the transport accepts writes again (or is gone)."""
        while self.paused and self.transport is not None:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _wake_writer(self) -> None:
        self.paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def idle_transport(self) -> asyncio.Transport | None:
        """The transport, if a frame may be written to it right now."""
        transport = self.transport
        if (
            transport is None
            or self.paused
            or transport.is_closing()
            or transport.get_write_buffer_size() > _MAX_BUFFERED
        ):
            return None
        return transport

    def close(self, code: int = NORMAL, abort: bool = False) -> None:
        """Send a close frame and close the TCP connection once what is buffered has gone.

        `abort` drops the buffer instead: for a client that stopped answering, whose unread
        data would otherwise hold the connection open until TCP gives up.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if abort:
            transport.abort()
            return
        transport.write(_control_frame(0x8, code.to_bytes(2, "big")))
        transport.close()

    # -- reading --------------------------------------------------------------------------

    def _check_header(self, first: int, second: int, length: int) -> int:
        """The close code the frame header violates, or 0."""
        opcode = first & 0x0F
        if first & 0x70 or not second & 0x80:
            return PROTOCOL_ERROR  # reserved bits without an extension; an unmasked client frame
        if opcode >= 0x8:
            if not first & 0x80 or length > 125 or opcode > 0xA:
                return PROTOCOL_ERROR
            return 0
        if opcode not in (0x0, 0x1, 0x2):
            return PROTOCOL_ERROR
        server = self.socket.server if self.socket is not None else None
        if server is None:
            return 0
        limit = server.max_http_buffer_size
        if limit and length + self._fragment_bytes > limit:
            return TOO_BIG
        if self._fragments is not None and len(self._fragments) >= server.max_ws_fragments:
            return TOO_BIG
        return 0

    def _frame(self, first: int, payload: bytes) -> None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode == 0x8:  # close: answer it, then the client closes TCP (or we do)
            self.close(_close_frame_error(payload))
            return
        if opcode == 0x9:  # ping
            self.write(_control_frame(0xA, payload))
            return
        if opcode == 0xA:  # unsolicited pong
            return
        if opcode == 0x0:
            if self._fragments is None:
                self.close(PROTOCOL_ERROR)
                return
            self._fragments.append(payload)
            self._fragment_bytes += len(payload)
            if not fin:
                return
            payload, opcode = b"".join(self._fragments), self._opcode
            self._fragments, self._fragment_bytes = None, 0
        elif self._fragments is not None:
            self.close(PROTOCOL_ERROR)  # a new message before the fragmented one finished
            return
        elif not fin:
            self._fragments, self._opcode = [payload], opcode
            self._fragment_bytes = len(payload)
            return
        if opcode == 0x1:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.close(INVALID_DATA)
                return
            self._message(text)
        else:
            self._message(payload)

    def _message(self, data: str | bytes) -> None:
        socket = self.socket
        if socket is None:
            return
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except Exception:
            self.close(INVALID_DATA)
            return
        if self.probing:
            self._probe(socket, pkt)
        else:
            socket.packet_received(pkt)

    def _probe(self, socket: LeanSocket, pkt: eio_packet.Packet) -> None:
        """The polling-to-websocket upgrade, as python-engineio runs it."""
        if self.probing == _PROBE:
            if pkt.packet_type != eio_packet.PING or pkt.data != "probe":
                self.close()  # connection_lost: the socket stays on long-polling
                return
            self.send_packet(eio_packet.Packet(eio_packet.PONG, data="probe"))
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
            self.probing = _UPGRADE
            return
        if pkt.packet_type != eio_packet.UPGRADE:
            self.close()  # connection_lost: the socket stays on long-polling
            return
        self.probing = 0
        socket.upgrading = False
        socket.upgraded = True
        socket.flush()


class LeanSocket(AsyncSocket):  # type: ignore[misc]
    """python-engineio's socket with a loop-owned websocket and shared ping timers.

    Instances start as the library's `AsyncSocket` and are switched to this class by
    `EngineServer` before their first ping is scheduled (the library hard-codes its class).
    """

    # The library's attributes, typed for mypy.
    server: EngineServer
    sid: str
    queue: asyncio.Queue[eio_packet.Packet | None]
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool
    closing: bool
    closed: bool

    conn: WebSocketConnection | None = None
    _writer: asyncio.Task[None] | None = None
    _pinged_at = 0.0

    # -- pings ----------------------------------------------------------------------------

    def schedule_ping(self) -> None:
        """After a pong (or on connect): the next ping goes out `ping_interval` from now."""
        if self.last_ping:
            self.last_ping = None
            self.server.pings.add(self)

    def ping(self) -> None:
        """Send a ping and expect its pong within `ping_timeout` (called by the ping timer)."""
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self._pinged_at = asyncio.get_running_loop().time()
        self._put(eio_packet.Packet(eio_packet.PING))
        self.server.pong_deadlines.add(self)

    def check_pong(self) -> None:
        """Close the socket if the last ping is still unanswered after `ping_timeout`."""
        if self.closing or self.closed or self.last_ping is None:
            return
        server = self.server
        waited = asyncio.get_running_loop().time() - self._pinged_at
        if waited + server.pong_deadlines.resolution < server.ping_timeout:
            return  # answered, and pinged again since: that ping has its own deadline
        server.lean_task(self.close(wait=False, abort=False, reason=server.reason.PING_TIMEOUT))

    # -- receiving ------------------------------------------------------------------------

    def packet_received(self, pkt: eio_packet.Packet) -> None:
        """A packet from the websocket: what `AsyncSocket.receive` does, without awaiting."""
        kind = pkt.packet_type
        if kind == eio_packet.MESSAGE:
            self.server.lean_task(
                self.server._trigger_event("message", self.sid, pkt.data, run_async=False)
            )
        elif kind == eio_packet.PONG:
            self.schedule_ping()
        elif kind == eio_packet.CLOSE:
            self.server.lean_task(
                self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
            )
        elif kind == eio_packet.UPGRADE:
            self._put(eio_packet.Packet(eio_packet.NOOP))
        # Anything else is ignored, as the library ignores unknown packets.

    def transport_lost(self) -> None:
        """The websocket's TCP connection closed."""
        self.conn = None
        if not self.closing and not self.closed:
            self.server.lean_task(
                self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
            )

    # -- sending --------------------------------------------------------------------------

    async def send(self, pkt: eio_packet.Packet) -> None:
        """Send a packet: written at once on an idle websocket, else queued."""
        if not await self.check_ping_timeout():
            return
        self._put(pkt)

    def _put(self, pkt: eio_packet.Packet) -> None:
        conn = self.conn
        if conn is None or not self.upgraded:
            self.queue.put_nowait(pkt)  # long-polling, or still upgrading: the poll takes it
        elif self._writer is None and not conn.paused and not self.queue.qsize():
            conn.send_packet(pkt)
        else:
            self.queue.put_nowait(pkt)
            self.flush()

    def flush(self) -> None:
        """Write what is queued: now while the transport takes it, then through a writer task."""
        conn = self.conn
        if conn is None or self._writer is not None:
            return
        queue = self.queue
        while queue.qsize() and not conn.paused:
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is not None:
                conn.send_packet(pkt)
        if queue.qsize():
            self._writer = self.server.lean_task(self._write_queued())

    async def _write_queued(self) -> None:
        """Drain the queue to the websocket, waiting whenever the transport pushes back."""
        try:
            while (conn := self.conn) is not None:
                await conn.writable()
                try:
                    pkt = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                self.queue.task_done()
                if pkt is not None:
                    conn.send_packet(pkt)
        finally:
            self._writer = None
        if self.closed and self.conn is not None:
            self.conn.close()

    def idle_transport(self) -> asyncio.Transport | None:
        """The transport a broadcast may write a frame to directly right now, else None."""
        conn = self.conn
        if (
            conn is None
            or not self.upgraded
            or self.closed
            or self._writer is not None
            or self.queue.qsize()
        ):
            return None
        return conn.idle_transport()

    # -- closing --------------------------------------------------------------------------

    async def close(
        self, wait: bool = True, abort: bool = False, reason: str | None = None
    ) -> None:
        """The library's close, then the websocket closes once the CLOSE packet is out."""
        await super().close(wait=wait, abort=abort, reason=reason)
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]
        conn = self.conn
        if conn is None:
            return
        if reason == self.server.reason.PING_TIMEOUT:
            conn.close(abort=True)
        elif self._writer is None:
            conn.close()
        else:
            # The writer closes it once the queue is out; a client that stopped reading gets
            # as long as a ping would have.
            loop = asyncio.get_running_loop()
            loop.call_later(self.server.ping_timeout, conn.close, NORMAL, True)

    # -- the websocket handshake ----------------------------------------------------------

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> web.StreamResponse:
        """Answer the websocket handshake, then take the connection over from aiohttp."""
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        request: web.BaseRequest = environ["aiohttp.request"]
        accept = _handshake_accept(request)
        protocol = request.protocol
        transport = request.transport
        if accept is None or transport is None or transport.is_closing():
            if not self.connected:
                await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            raise web.HTTPBadRequest(text="invalid websocket handshake")
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        conn = WebSocketConnection(self, transport)
        tail = _detach(protocol, transport, conn)
        self.conn = conn
        if self.connected:
            self.upgrading = True  # held until the client's probe and UPGRADE packets
            conn.probing = _PROBE
        else:
            self.connected = True
            self.upgraded = True
            self.flush()  # the OPEN packet, queued before there was a websocket
        if tail:
            conn.data_received(tail)
        return _Switched()


def _handshake_accept(request: web.BaseRequest) -> bytes | None:
    """`Sec-WebSocket-Accept` for a valid client handshake (RFC 6455 4.2.1), else None."""
    headers = request.headers
    connection = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if headers.get("Upgrade", "").lower().strip() != "websocket" or "upgrade" not in connection:
        return None
    if headers.get("Sec-WebSocket-Version", "") not in ("13", "8", "7"):
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest())


def _detach(protocol: Any, transport: asyncio.Transport, conn: WebSocketConnection) -> bytes:
    """Move `transport` from aiohttp's request handler to `conn`; returns bytes already read.

    aiohttp has no API for this. Its handler stores what arrives after an upgrade request in
    `_message_tail` until a websocket parser is set; it must not close the transport when the
    request ends (`transport = None`, as after a lost connection), nor keep it in the server's
    connection list (which graceful shutdown walks; our sockets close through Engine.IO).
    """
    protocol.keep_alive(False)  # also cancels its keep-alive timer
    tail: bytes = protocol._message_tail
    protocol._message_tail = b""
    protocol._parser = None  # breaks the handler <-> parser cycle; no more HTTP on this one
    manager = protocol._manager
    if manager is not None:
        manager.connection_lost(protocol, None)
    protocol.transport = None
    transport.set_protocol(conn)
    if not transport.is_reading():
        transport.resume_reading()  # aiohttp pauses reading when its buffer fills
    return tail


class _Switched(web.StreamResponse):
    """What the request handler returns once the connection has left aiohttp: nothing to send."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    @property
    def prepared(self) -> bool:
        return True

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def translate_request(request: web.Request) -> dict[str, Any]:
    """python-engineio's environ, with the client's real address in `REMOTE_ADDR`.

    The library fills in 127.0.0.1 and keeps the aiohttp request for the real one; the request
    is dropped once the connection is established (`EngineServer._handle_connect`).
    """
    environ: dict[str, Any] = engineio_aiohttp.translate_request(request)
    environ["REMOTE_ADDR"] = request.remote or ""
    return environ


# What only the handshake request needed: the request itself, its body stream, the upgrade.
_HANDSHAKE_ONLY = frozenset(
    {
        "aiohttp.request",
        "wsgi.input",
        "HTTP_CONNECTION",
        "HTTP_UPGRADE",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS",
    }
)


def _compact(environ: dict[str, Any]) -> None:
    """Shrink an established socket's environ in place.

    python-socketio keeps it for the socket's life and hands it to every namespace connect,
    all of which come after the handshake. Keeping the aiohttp request would keep the whole
    parsed request alive; the header names are interned so sockets share them; and the dict
    is rebuilt because deleting keys never shrinks one.
    """
    kept = {sys.intern(k): v for k, v in environ.items() if k not in _HANDSHAKE_ONLY}
    environ.clear()
    environ.update(kept)


class EngineServer(EngineBase):
    """python-engineio's server with `LeanSocket`s, shared ping timers and lighter environs."""

    _async: dict[str, Any]
    sockets: dict[str, AsyncSocket]
    ping_interval: float
    ping_timeout: float
    max_http_buffer_size: int
    max_ws_fragments: int = 1024  # set from the settings by `server.realtime`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library's monitor task walks every socket each ping_timeout; the timers do it.
        kwargs["monitor_clients"] = False
        super().__init__(*args, **kwargs)
        self._async = {**self._async, "translate_request": translate_request}
        self.pings: DelayQueue[LeanSocket] = DelayQueue(self.ping_interval, LeanSocket.ping)
        self.pong_deadlines: DelayQueue[LeanSocket] = DelayQueue(
            self.ping_timeout, LeanSocket.check_pong
        )
        self._lean_tasks: set[asyncio.Task[Any]] = set()

    def lean_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task held until done (the loop keeps only weak references)."""
        task = asyncio.ensure_future(coro)
        self._lean_tasks.add(task)
        task.add_done_callback(self._lean_tasks.discard)
        return task

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            # The first moment the new socket is visible, before `_handle_connect` schedules its
            # first ping: make it a LeanSocket (same object, same state, our methods).
            socket = self.sockets.get(args[0])
            if type(socket) is AsyncSocket:
                socket.__class__ = LeanSocket
        return await super()._trigger_event(event, *args, **kwargs)

    async def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None
    ) -> Any:
        try:
            return await super()._handle_connect(environ, transport, jsonp_index)
        finally:
            _compact(environ)

    async def shutdown(self) -> None:
        """Stop the ping timers, then the library's own background work."""
        self.pings.close()
        self.pong_deadlines.close()
        await super().shutdown()
