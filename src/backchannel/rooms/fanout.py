"""Broadcast fast path: encode a room emit once and write the ready frame to each local websocket.

python-socketio's manager already encodes a broadcast once, but then creates one asyncio task per
recipient, which puts the packet on the socket's queue, whose writer task wakes up, encodes the
Engine.IO packet and builds the websocket frame again: ~50-120 us of CPU per delivery, and
enough short-lived objects that the cyclic GC's full passes take a large share of the rest.

Here the Engine.IO packet and the websocket frame around it are built once per emit, and each
recipient whose socket is idle (websocket transport, nothing queued, its writer parked waiting
for work, no compression negotiated, transport not backed up) gets `transport.write(frame)`:
the same bytes, in the same order, that its writer would have produced. Every other recipient
(long-polling, busy or backed-up sockets, compressed websockets) takes the library's own path,
so ordering, backpressure and the protocol are unchanged. Emits with an ack callback and
non-local delivery (the Redis manager's publish) are untouched.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

# A transport holding more than this unsent is slow: leave it to the writer's backpressure.
_MAX_BUFFERED = 64 * 1024

# The attributes `realtime` sets on each Engine.IO socket: its aiohttp WebSocketResponse, and
# the request's transport (aiohttp's public `BaseRequest.transport`, the one the response writes
# to), so the fast path needs neither `WebSocketResponse._writer` nor the writer's `_closing`.
WS_ATTRIBUTE = "backchannel_ws"
TRANSPORT_ATTRIBUTE = "backchannel_transport"


def websocket_frame(payload: str | bytes) -> bytes:
    """One unmasked, uncompressed, final websocket frame (server to client) carrying `payload`."""
    if isinstance(payload, str):
        data, opcode = payload.encode(), 0x1
    else:
        data, opcode = payload, 0x2
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + data


def message_frame(encoded: str | bytes) -> bytes:
    """The websocket frame of an Engine.IO MESSAGE carrying `encoded` (a Socket.IO packet).

    Built here rather than from `Packet.encode()`: python-engineio caches that encoding on the
    packet whichever transport asks first, and the same packet also goes to the long-polling
    recipients of the emit, which need text (base64 for binary), never the raw frame bytes.
    """
    return websocket_frame(encoded if isinstance(encoded, bytes) else "4" + encoded)


def _idle_transport(eio_socket: Any) -> Any:
    """The transport to write to when the socket has nothing in flight, else None."""
    lean = getattr(eio_socket, "idle_transport", None)
    if lean is not None:  # server.engine_sockets: the socket knows its own state
        return lean()
    if not eio_socket.upgraded or eio_socket.closed:
        return None
    ws = getattr(eio_socket, WS_ATTRIBUTE, None)
    if ws is None or ws.closed or ws.compress:
        return None
    queue = eio_socket.queue
    # The writer is parked in queue.get() with nothing handed to it: writing now cannot
    # overtake a packet it has taken but not yet written.
    if queue.qsize() or not any(not getter.done() for getter in queue._getters):
        return None
    # `closed` turns True before aiohttp writes its close frame: no frame can follow that one.
    transport = getattr(eio_socket, TRANSPORT_ATTRIBUTE, None)
    if (
        transport is None
        or transport.is_closing()
        or transport.get_write_buffer_size() > _MAX_BUFFERED
    ):
        return None
    return transport


def _encode_json(
    packet_class: Any, packet_type: int, namespace: str, data: list[Any], id: int | None = None
) -> str | None:
    """The Socket.IO EVENT or ACK packet as text, or None when the library must encode it.

    With the JSON serializer the library first walks the whole payload looking for bytes (to
    send them as binary attachments); JSON refuses bytes anyway, so try the JSON text first and
    let a TypeError send the payload the library's way. msgpack is always the library's.
    """
    if packet_class is not sio_packet.Packet:
        return None
    try:
        body = packet_class.json.dumps(data, separators=(",", ":"))
    except TypeError:
        return None
    head = str(packet_type) if namespace == "/" else f"{packet_type}{namespace},"
    return head + body if id is None else f"{head}{id}{body}"


def _encode_event(packet_class: Any, namespace: str, data: list[Any]) -> Any:
    """The encoded Socket.IO EVENT packet: str, bytes (msgpack), or a list (binary attachments)."""
    text = _encode_json(packet_class, sio_packet.EVENT, namespace, data)
    if text is not None:
        return text
    return packet_class(sio_packet.EVENT, namespace=namespace, data=data).encode()


class FanoutMixin(socketio.AsyncManager):  # type: ignore[misc]
    """The local side of the manager: write-once broadcasts and a room index per socket.

    python-socketio finds a leaving socket's rooms by scanning every room of the namespace, and
    each socket has at least two (its sid room and its user room): a disconnect costs O(sockets)
    and everyone reconnecting costs O(sockets^2) - tens of seconds of CPU at 10,000. The index
    makes it O(the socket's rooms).
    """

    fast_writes = 0  # deliveries that took the fast path (tests and metrics read it)
    fast_fanout = True  # False: every emit takes the library's path (BACKCHANNEL_FAST_FANOUT)
    room_index = True  # False: disconnects take the library's scan (server.fast_paths)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[str, dict[str, set[Any]]] = {}

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Enter a room (the library's way) and remember it for this socket."""
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault(namespace, {}).setdefault(sid, set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Leave a room and forget it."""
        super().basic_leave_room(sid, namespace, room)
        by_sid = self._rooms_of.get(namespace)
        rooms = by_sid.get(sid) if by_sid is not None else None
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del by_sid[sid]  # type: ignore[union-attr]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """`BaseManager.basic_disconnect`, leaving only the socket's own rooms."""
        if not self.room_index:
            super().basic_disconnect(sid, namespace, **kwargs)  # it leaves through ours
            return
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get(namespace, {}).get(sid, ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms a socket is in, from the index."""
        return [r for r in self._rooms_of.get(namespace, {}).get(sid, ()) if r is not None]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Deliver `event` to the room's local sockets; acks take the library's path."""
        if callback is not None or not self.fast_fanout:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        encoded = _encode_event(self.server.packet_class, namespace, [event, *args])
        if isinstance(encoded, list):  # binary attachments: several frames, the library's way
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, to=to)
            return
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = message_frame(encoded)
        sockets = self.server.eio.sockets
        slow: list[str] = []
        written = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            eio_socket = sockets.get(eio_sid)
            if eio_socket is None:
                continue
            transport = _idle_transport(eio_socket)
            if transport is None:
                slow.append(eio_sid)
            else:
                transport.write(frame)
                written += 1
        FanoutMixin.fast_writes += written
        if slow:
            await asyncio.gather(
                *(self.server._send_eio_packet(eio_sid, eio_pkt) for eio_sid in slow)
            )


class FanoutServer(socketio.AsyncServer):  # type: ignore[misc]
    """`AsyncServer` whose single packets (acks, connect replies) take the same fast path."""

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: list[Any], namespace: str, id: Any
    ) -> None:
        """The library's, with the ack encoded as JSON text directly (`_encode_json`)."""
        r = await server._trigger_event(data[0], namespace, sid, *data[1:])
        if r is self.not_handled or id is None:
            return
        args = [] if r is None else list(r) if isinstance(r, tuple) else [r]
        encoded = _encode_json(self.packet_class, sio_packet.ACK, namespace, args, id)
        if encoded is None:
            pkt = self.packet_class(sio_packet.ACK, namespace=namespace, id=id, data=args)
            await server._send_packet(eio_sid, pkt)
        else:
            await self._send_encoded(eio_sid, encoded)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, list):
            await super()._send_packet(eio_sid, pkt)
            return
        await self._send_encoded(eio_sid, encoded)

    async def _send_encoded(self, eio_sid: str, encoded: str | bytes) -> None:
        eio_socket = self.eio.sockets.get(eio_sid)
        transport = _idle_transport(eio_socket) if eio_socket is not None else None
        if transport is None:
            await self.eio.send(eio_sid, encoded)
            return
        transport.write(message_frame(encoded))
        FanoutMixin.fast_writes += 1
