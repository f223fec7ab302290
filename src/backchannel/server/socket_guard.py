"""What a Socket.IO packet must be before python-socketio acts on it, and who may stay unnamed.

python-socketio dispatches a client event by name through the same `trigger_event` that runs
the connect and disconnect lifecycle, so a client event named `disconnect` would cancel a
socket's token expiry and one named `connect` would authenticate it again as someone else. A
packet it cannot decode (JSON nested past the recursion limit), an event whose name is not a
string (a list, an object) or whose payload cannot be stored is logged as a traceback and never
answered. This mixin sits in front of all of that:

- every EVENT is checked before dispatch: its name must be a non-empty string of at most
  `MAX_EVENT_NAME` characters and not reserved, its payload must pass `backchannel.inputs`;
  otherwise an event with an ack id is answered with the `invalid` envelope, and nothing runs;
- a packet that does not decode is answered `invalid` when its header names an EVENT with an
  ack id, and dropped otherwise, so the connection carries on; one nested deeper than
  `inputs.MAX_RAW_DEPTH` is not decoded at all, so every Python answers it alike (3.11's json
  module gives up near 1,000 levels, 3.12+ parses far deeper);
- binary packets (BINARY_EVENT / BINARY_ACK) are refused outright: the contract is JSON, and a
  header whose attachments never come would otherwise swallow the connection's next packets;
- a namespace connects once per Engine.IO session: a second CONNECT is refused, so a socket's
  identity never changes;
- an Engine.IO transport that has connected no namespace within `connect_deadline_seconds` is
  closed, and one client IP may hold at most `max_unauthenticated_per_ip` such transports.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any

from socketio import packet as sio_packet

from backchannel import inputs
from backchannel.errors import BackchannelError, Invalid, Unauthorized
from backchannel.server.proxies import Network, client_address

log = logging.getLogger(__name__)

MAX_EVENT_NAME = 64
# Names the Socket.IO libraries give a meaning of their own (lifecycle events on the server or
# in clients, the catch-all handler): never an application event.
RESERVED_EVENTS = frozenset(
    {
        "connect",
        "disconnect",
        "connect_error",
        "disconnecting",
        "error",
        "message",
        "newListener",
        "removeListener",
        "ping",
        "pong",
        "*",
    }
)

# The header of a text packet: type, attachment count, namespace, ack id (socketio.packet).
_HEADER = re.compile(r"^(\d)(?:\d{1,10}-)?(/[^,]*)?,?(\d{1,100})?")


def event_name_problem(data: Any) -> str | None:
    """Why an EVENT's data cannot name an application event, or None."""
    if not isinstance(data, list) or not data:
        return "an event is a non-empty array whose first item is its name"
    name = data[0]
    if not isinstance(name, str) or not name:
        return "the event name must be a non-empty string"
    if len(name) > MAX_EVENT_NAME:
        return f"the event name is longer than {MAX_EVENT_NAME} characters"
    if name in RESERVED_EVENTS:
        return f"{name!r} is reserved and cannot be sent as an event"
    return inputs.string_problem(name)


# The python-socketio methods the guard overrides or calls, with their parameters: private,
# so checked when a server is built (docs/internals.md). A library release that renames or
# reshapes one fails start-up rather than silently losing the guard.
LIBRARY_METHODS: dict[str, tuple[str, ...]] = {
    "_handle_eio_connect": ("eio_sid", "environ"),
    "_handle_eio_message": ("eio_sid", "data"),
    "_handle_eio_disconnect": ("eio_sid", "reason"),
    "_handle_connect": ("eio_sid", "namespace", "data"),
    "_handle_disconnect": ("eio_sid", "namespace", "reason"),
    "_handle_event": ("eio_sid", "namespace", "id", "data"),
    "_handle_ack": ("eio_sid", "namespace", "id", "data"),
    "_send_packet": ("eio_sid", "pkt"),
}


def check_library(server_class: type) -> None:
    """Fail loudly if python-socketio no longer has the methods the guard relies on."""
    library = next((c for c in server_class.__mro__ if c.__module__.startswith("socketio.")), None)
    for name, expected in LIBRARY_METHODS.items():
        method = getattr(library, name, None)
        if method is None:
            raise RuntimeError(f"python-socketio has no {name}: the packet guard needs updating")
        params = tuple(inspect.signature(method).parameters)[1:]
        if params[: len(expected)] != expected:
            raise RuntimeError(
                f"python-socketio's {name}{params} is not {name}{expected}: "
                "the packet guard needs updating"
            )


def _envelope(error: BackchannelError) -> dict[str, Any]:
    return {"ok": False, "error": error.to_dict()}


class GuardedServer:
    """A mixin for `socketio.AsyncServer` (listed first): the checks above, then the library."""

    # Set by `guard()`; class defaults keep a server usable before it is configured.
    connect_deadline: float = 10.0
    max_unauthenticated_per_ip: int = 50
    trusted_proxies: tuple[Network, ...] = ()

    # The library's, typed here.
    packet_class: Any
    manager: Any
    eio: Any
    reason: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_library(type(self))
        # Transports with no namespace yet: eio sid -> (client IP, deadline timer).
        self._pending: dict[str, tuple[str, asyncio.TimerHandle]] = {}
        self._pending_per_ip: dict[str, int] = {}
        self._closing: set[asyncio.Task[Any]] = set()

    def guard(
        self,
        *,
        connect_deadline: float,
        max_unauthenticated_per_ip: int,
        trusted_proxies: tuple[Network, ...],
    ) -> None:
        """Configure the limits on transports that have not connected a namespace."""
        self.connect_deadline = connect_deadline
        self.max_unauthenticated_per_ip = max_unauthenticated_per_ip
        self.trusted_proxies = trusted_proxies

    def unauthenticated_transports(self, ip: str | None = None) -> int:
        """How many transports (from `ip`, or from anyone) have connected no namespace yet."""
        return len(self._pending) if ip is None else self._pending_per_ip.get(ip, 0)

    # -- transports that never connect a namespace ------------------------------------------

    def _client_ip(self, environ: dict[str, Any]) -> str:
        request = environ.get("aiohttp.request")
        peer = getattr(request, "remote", None) or environ.get("REMOTE_ADDR")
        return client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted_proxies)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        ip = self._client_ip(environ)
        counts = self._pending_per_ip
        if counts.get(ip, 0) >= self.max_unauthenticated_per_ip:
            log.warning("too many unauthenticated transports", extra={"ip": ip})
            return "too many connections from this address that have not connected a namespace"
        result = await super()._handle_eio_connect(eio_sid, environ)  # type: ignore[misc]
        timer = asyncio.get_running_loop().call_later(
            self.connect_deadline, self._deadline_passed, eio_sid
        )
        self._pending[eio_sid] = (ip, timer)
        counts[ip] = counts.get(ip, 0) + 1
        return result

    def _settled(self, eio_sid: str) -> None:
        """The transport connected a namespace or went away: it no longer counts."""
        entry = self._pending.pop(eio_sid, None)
        if entry is None:
            return
        ip, timer = entry
        timer.cancel()
        counts = self._pending_per_ip
        left = counts.get(ip, 1) - 1
        if left > 0:
            counts[ip] = left
        else:
            counts.pop(ip, None)

    def _deadline_passed(self, eio_sid: str) -> None:
        if eio_sid not in self._pending:
            return
        self._settled(eio_sid)
        task = asyncio.ensure_future(self.eio.disconnect(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._settled(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)  # type: ignore[misc]

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None and self.manager.is_connected(sid, namespace):
            # Its identity is settled: a second CONNECT must not authenticate it again.
            error = Invalid("this namespace is already connected on this connection")
            await self._send_packet(  # type: ignore[attr-defined]
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": error.message, "data": error.to_dict()},
                    namespace=namespace,
                ),
            )
            return
        # The client has asked in time: how long the answer takes (a reconnect storm queueing
        # on the database) is the server's, so the deadline stops while it is worked out.
        pending = self._pending.get(eio_sid)
        if pending is not None:
            pending[1].cancel()
        await super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None and self.manager.is_connected(sid, namespace):
            self._settled(eio_sid)
        elif eio_sid in self._pending:
            # Refused (or still connecting another namespace): a fresh deadline to try again.
            ip, _ = self._pending[eio_sid]
            timer = asyncio.get_running_loop().call_later(
                self.connect_deadline, self._deadline_passed, eio_sid
            )
            self._pending[eio_sid] = (ip, timer)

    # -- packets ----------------------------------------------------------------------------

    async def _refuse(
        self, eio_sid: str, namespace: str | None, ack_id: int | None, error: BackchannelError
    ) -> None:
        if ack_id is None:
            return
        await self._send_packet(  # type: ignore[attr-defined]
            eio_sid,
            self.packet_class(
                sio_packet.ACK, namespace=namespace, id=ack_id, data=[_envelope(error)]
            ),
        )

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        uses_binary = getattr(self.packet_class, "uses_binary_events", True)
        if uses_binary and not isinstance(data, str):
            return  # an attachment of a refused binary packet: nothing to answer
        try:
            if isinstance(data, str) and inputs.nests_deeper_than(data):
                # Refused before decoding, the same on every Python (see inputs.MAX_RAW_DEPTH).
                raise RecursionError("nested too deep")
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:
            await self._undecodable(eio_sid, data, exc)
            return
        kind = pkt.packet_type
        if kind == sio_packet.EVENT:
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
            await self._refuse(
                eio_sid,
                pkt.namespace,
                pkt.id if kind == sio_packet.BINARY_EVENT else None,
                Invalid("binary attachments are not accepted; send JSON"),
            )
        elif kind in (sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.ACK):
            await self._dispatch_decoded(eio_sid, pkt)
        # CONNECT_ERROR and unknown types from a client mean nothing: dropped.

    async def _dispatch_decoded(self, eio_sid: str, pkt: Any) -> None:
        """CONNECT, DISCONNECT and ACK, as the library handles them."""
        kind = pkt.packet_type
        if kind == sio_packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == sio_packet.DISCONNECT:
            await self._handle_disconnect(  # type: ignore[attr-defined]
                eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT
            )
        else:
            handle_ack = self._handle_ack  # type: ignore[attr-defined]
            await handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)

    async def _undecodable(self, eio_sid: str, data: Any, exc: Exception) -> None:
        log.info("undecodable packet dropped: %s", type(exc).__name__)
        if not isinstance(data, str):
            return
        header = _HEADER.match(data)
        if header is None:
            return
        kind, namespace = int(header.group(1)), (header.group(2) or "/").split("?", 1)[0]
        reason = "nested too deep" if isinstance(exc, RecursionError) else "not valid JSON"
        error = Invalid(
            "invalid packet", [{"field": "(packet)", "message": f"the payload is {reason}"}]
        )
        if kind == sio_packet.CONNECT:
            # A connect whose auth cannot be read: refused as any failed connect is.
            await self._send_packet(  # type: ignore[attr-defined]
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": error.message, "data": error.to_dict()},
                    namespace=namespace,
                ),
            )
        elif kind == sio_packet.EVENT and header.group(3):
            await self._refuse(eio_sid, namespace, int(header.group(3)), error)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, ack_id: int | None, data: Any
    ) -> None:
        namespace = namespace or "/"
        problem = event_name_problem(data)
        if problem is not None:
            error = Invalid("invalid event", [{"field": "(event)", "message": problem}])
            await self._refuse(eio_sid, namespace, ack_id, error)
            return
        try:
            inputs.check(data[1:], root=("payload",))
        except Invalid as exc:
            await self._refuse(eio_sid, namespace, ack_id, exc)
            return
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            await self._refuse(
                eio_sid, namespace, ack_id, Unauthorized(f"not connected to {namespace}")
            )
            return
        await super()._handle_event(eio_sid, namespace, ack_id, data)  # type: ignore[misc]
