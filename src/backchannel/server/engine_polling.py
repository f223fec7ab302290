"""Engine.IO as the handshake advertises it: long-polling, ping intervals, and a drain.

python-engineio (4.12-4.15) departs from its own handshake in three places, all fixed here for
every transport mode (lean websockets or not):

- A long-polling POST is read with one `StreamReader.read(length)`, which returns what has
  arrived so far: bodies from about 200 kB (under the advertised 1,000,000 `maxPayload`) were
  decoded half-read. More than 16 packets in one POST were refused by `Payload.decode`, and
  any error in a POST was answered 200 (a bare `except`), so the packets were dropped and
  their acks never came. Here the body is read whole up to `maxPayload`, any number of packets
  is accepted, a body over `maxPayload` gets 413 and closes the session, and an undecodable one
  gets 400 and closes it: never a 200 that drops packets.
- `pingInterval` is advertised as `int(seconds) * 1000`: 1.5 s became 1000 ms and clients
  timed out. Here it is the exact number of milliseconds.
- `disconnect()` sends each socket an Engine.IO CLOSE, which python-engineio's client treats as
  final (no reconnect), and waits for every polling client to fetch it, which never happens
  once the listener has closed (SIGTERM hung until SIGKILL). `drain` closes every transport
  the way a lost connection looks instead, with a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import engineio
from aiohttp import web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from backchannel.server.send_queue import CappedQueue

# How long a drain lets pending long-polls take what is queued for them (`server:shutdown`).
POLL_FLUSH_SECONDS = 1.0

_TOO_LARGE = {
    "status": "413 Payload Too Large",
    "headers": [("Content-Type", "text/plain")],
    "response": b"payload too large",
}


class PayloadTooLarge(Exception):
    """A long-polling body over `maxPayload`."""


def open_packet_interval_ms(ping_interval: float, grace: float) -> int:
    """`pingInterval` as the OPEN packet should carry it: exact milliseconds."""
    return round((ping_interval + grace) * 1000)


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole request body, or `PayloadTooLarge` as soon as it passes `limit` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def decode_payload(body: bytes) -> list[eio_packet.Packet]:
    """Every packet of a long-polling payload; `ValueError` if any of it is not Engine.IO."""
    if not body:
        return []
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return [eio_packet.Packet(encoded_packet=part) for part in text.split("\x1e")]


class EngineBase(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with whole long-polling bodies, exact pings and a drain."""

    sockets: dict[str, AsyncSocket]
    ping_interval: float
    ping_interval_grace_period: float
    ping_timeout: float
    max_http_buffer_size: int
    # Each socket's cap on queued plus unsent bytes (0: none), set from the settings by
    # `server.realtime`; `on_slow_consumer` is told of every socket closed for passing it.
    send_buffer_bytes = 0
    on_slow_consumer: Callable[[], None] | None = None
    # False: long-polling POSTs and the OPEN packet are the library's (server.fast_paths).
    own_polling = True

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            socket = self.sockets.get(args[0])
            if socket is not None:
                if self.own_polling:
                    # The OPEN packet is queued, not yet encoded: correct its interval in place.
                    self._exact_ping_interval(socket)
                if isinstance(socket.queue, CappedQueue):
                    socket.queue.sid = socket.sid  # from now on its bytes count (send_queue)
        return await super()._trigger_event(event, *args, **kwargs)

    def _exact_ping_interval(self, socket: AsyncSocket) -> None:
        queue = socket.queue
        held = []
        while queue.qsize():
            pkt = queue.get_nowait()
            queue.task_done()
            if (
                pkt is not None
                and pkt.packet_type == eio_packet.OPEN
                and isinstance(pkt.data, dict)
                and pkt.encode_cache is None
            ):
                pkt.data["pingInterval"] = open_packet_interval_ms(
                    self.ping_interval, self.ping_interval_grace_period
                )
            held.append(pkt)
        for pkt in held:
            queue.put_nowait(pkt)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """Long-polling POSTs of a known session are ours; everything else is the library's."""
        request = args[0] if args else None
        if self.own_polling and isinstance(request, web.BaseRequest) and request.method == "POST":
            socket = self.sockets.get(request.query.get("sid", ""))
            if (
                socket is not None
                and socket.connected
                and not socket.upgraded
                and request.query.get("transport") == "polling"
                and "j" not in request.query  # JSONP (`d=` bodies) stays the library's
            ):
                return await self._handle_post(request, socket)
        return await super().handle_request(*args, **kwargs)

    async def _handle_post(self, request: web.BaseRequest, socket: AsyncSocket) -> Any:
        environ = self._async["translate_request"](request)
        refused = self._refused_origin(environ)
        if refused is not None:
            return await self._make_response(self._bad_request(refused), environ)
        try:
            packets = decode_payload(await read_body(request, self.max_http_buffer_size))
        except PayloadTooLarge:
            await self._end(socket, self.reason.TRANSPORT_ERROR)
            return await self._make_response(dict(_TOO_LARGE), environ)
        except ValueError:
            await self._end(socket, self.reason.TRANSPORT_ERROR)
            return await self._make_response(self._bad_request("invalid payload"), environ)
        for pkt in packets:
            try:
                await socket.receive(pkt)
            except eio_exceptions.EngineIOError:
                await self._end(socket, self.reason.TRANSPORT_ERROR)
                return await self._make_response(self._bad_request(), environ)
        return await self._make_response(self._ok(), environ)

    def _refused_origin(self, environ: dict[str, Any]) -> str | None:
        """The library's origin check (it runs before its own POST handling)."""
        if self.cors_allowed_origins == []:
            return None
        origin = environ.get("HTTP_ORIGIN")
        if not origin:
            return None
        allowed = self._cors_allowed_origins(environ)
        if allowed is not None and origin not in allowed:
            return f"{origin} is not an accepted origin."
        return None

    async def _end(self, socket: AsyncSocket, reason: str) -> None:
        """Close a session without an Engine.IO CLOSE; a pending poll returns at once."""
        with contextlib.suppress(Exception):
            await socket.close(wait=False, abort=True, reason=reason)
        # Ends a pending long-poll (and the library's websocket writer) after what is queued.
        socket.queue.put_nowait(None)
        sid: str = socket.sid
        if self.sockets.get(sid) is socket:
            del self.sockets[sid]

    async def drain(self, timeout: float) -> None:
        """Close every session so that every client sees a lost connection and reconnects.

        What is queued is delivered first: pending long-polls take it (for at most
        `POLL_FLUSH_SECONDS`, within `timeout`), websockets have it written before they close.
        No Engine.IO CLOSE is sent: python-engineio's client never reconnects after one.
        """
        flushed = [
            asyncio.ensure_future(s.queue.join())
            for s in self.sockets.values()
            if not s.upgraded and not s.closed and s.queue.qsize()
        ]
        if flushed:
            _, pending = await asyncio.wait(
                flushed, timeout=max(0.0, min(timeout, POLL_FLUSH_SECONDS))
            )
            for waiter in pending:
                waiter.cancel()
        for socket in list(self.sockets.values()):
            await self._end(socket, self.reason.SERVER_DISCONNECT)
