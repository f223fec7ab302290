"""The one place where sockets are authenticated and every event gets its ack.

Each namespace subclasses `AuthenticatedNamespace` and marks handlers with `@event(name, Model)`.
The base validates the payload, calls the handler, and turns every outcome, an unexpected
exception included, into the contract's ack envelope: python-socketio only logs an exception
raised in a handler, and the client would wait for an ack that never comes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_type_hints

import socketio
from pydantic import BaseModel, ValidationError

from backchannel.domain.auth import Identity, authenticate
from backchannel.domain.subscriptions import subscriber_rooms
from backchannel.errors import (
    BackchannelError,
    Internal,
    Invalid,
    TokenExpired,
    Unauthorized,
    Unavailable,
    validation_details,
)
from backchannel.handlers.session_events import EXPIRING_NOTICE_SECONDS, SessionEvents
from backchannel.outage_log import dependency_of, report
from backchannel.rooms.live_rooms import JOIN_ON_CONNECT
from backchannel.rooms.names import Namespace, session_room, user_room
from backchannel.server.logs import correlation_id
from backchannel.server.proxies import client_address
from backchannel.server.ratelimit import Rate, RateLimiter
from backchannel.server.runtime import Runtime
from backchannel.server.timers import Deadlines

log = logging.getLogger(__name__)

# Namespaces whose open sockets are counted per user across the cluster: a chat message to a
# user with no `/chat` socket anywhere becomes a notification, and a notification is pushed
# to devices only while the user has neither a `/chat` nor a `/notifications` socket.
COUNTED_NAMESPACES = frozenset({Namespace.CHAT, Namespace.NOTIFICATIONS})

Handler = Callable[[Any, "EventContext", Any], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class EventContext:
    """Who sent an event, on which socket."""

    sid: str
    user_id: str
    role: str
    namespace: Namespace


@dataclass(frozen=True)
class EventSpec:
    """A client event: the model its payload is validated with, its handler, and the model
    of its ack's `data` (what the AsyncAPI document and the JS client's types are built from)."""

    model: type[BaseModel] | None
    handler: Handler
    ack: type[BaseModel] | None


def event(
    name: str, model: type[BaseModel] | None = None, *, ack: type[BaseModel] | None = None
) -> Callable[[H], H]:
    """Mark a namespace method as the handler of client event `name`, validated by `model`.

    `ack` is the model of the ack's `data`; without it, the handler's return annotation.
    """

    def mark(handler: H) -> H:
        handler.__backchannel_event__ = (name, model, ack)  # type: ignore[attr-defined]
        return handler

    return mark


def ack_model(handler: Handler, declared: type[BaseModel] | None) -> type[BaseModel] | None:
    """The ack's model: declared, or the handler's return annotation when it is a model."""
    if declared is not None:
        return declared
    returned = get_type_hints(handler).get("return")
    return returned if isinstance(returned, type) and issubclass(returned, BaseModel) else None


def ok(data: Any) -> dict[str, Any]:
    """A successful ack."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return {"ok": True, "data": data}


def failed(error: BackchannelError) -> dict[str, Any]:
    """A failed ack."""
    return {"ok": False, "error": error.to_dict()}


def token_from_handshake(auth: Any, environ: dict[str, Any]) -> str | None:
    """The access token from `auth.token` or an `Authorization: Bearer` header."""
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def handshake_ip(environ: dict[str, Any], runtime: Runtime) -> str:
    """The client's IP for this handshake.

    python-engineio fills REMOTE_ADDR with a constant and keeps the aiohttp request for the real
    peer; `server.engine_sockets` puts the peer in REMOTE_ADDR and drops the request once the
    connection is established, before any namespace connects.
    """
    request = environ.get("aiohttp.request")
    peer = getattr(request, "remote", None) or environ.get("REMOTE_ADDR")
    return client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), runtime.trusted_proxies)


class AuthenticatedNamespace(SessionEvents, socketio.AsyncNamespace):  # type: ignore[misc]
    """A namespace whose sockets all carry a verified identity and whose events all get acks."""

    path: Namespace
    # What the server emits on this namespace, event → payload model (the AsyncAPI document's
    # server events). Every namespace also carries `COMMON_SERVER_EVENTS`.
    server_events: ClassVar[dict[str, type[BaseModel]]] = {}

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(self.path.value)
        self.rt = runtime
        self._events = self.event_specs()
        # Sockets that finished connecting, and when each one's token expires: one timer for
        # the whole namespace rather than a loop handle and closure per socket.
        self._live: dict[str, str] = {}  # sid -> user id
        self._expiries = Deadlines(self._expire_soon)
        self._warnings = Deadlines(self._warn_soon)
        self._expiring: set[asyncio.Task[None]] = set()
        self._metric_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._connect_rate = Rate.parse(runtime.settings.connect_rate_limit)
        self._event_rate = Rate.parse(runtime.settings.socket_event_rate_limit)
        # A socket lives on one node, so its event budget needs no Redis round trip.
        self._event_buckets = RateLimiter(
            None, "", refused=lambda scope: runtime.metrics.rate_limited.labels(scope).inc()
        )

    @classmethod
    def event_specs(cls) -> dict[str, EventSpec]:
        """Every client event this namespace class answers, by name."""
        specs: dict[str, EventSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                marker = getattr(attr, "__backchannel_event__", None)
                if marker is not None:
                    name, model, ack = marker
                    specs[name] = EventSpec(model, attr, ack_model(attr, ack))
        return specs

    @property
    def event_names(self) -> list[str]:
        """The client events this namespace answers."""
        return sorted(self._events)

    async def trigger_event(self, event_name: str, *args: Any) -> Any:
        """Route connect, disconnect and every client event."""
        if event_name == "connect":
            sid, environ = args[0], args[1]
            return await self._connect(sid, environ, args[2] if len(args) > 2 else None)
        if event_name == "disconnect":
            return await self._disconnect(args[0])
        return await self._handle(event_name, args[0], args[1:])

    # -- connect / disconnect -------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        metrics = self.rt.metrics
        try:
            if self.rt.draining:
                raise Unavailable("server is shutting down; reconnect to another node")
            ip = handshake_ip(environ, self.rt)
            await self.rt.limiter.hit(f"connect:{ip}", self._connect_rate)
            identity = await authenticate(self.rt, token_from_handshake(auth, environ))
            await self.save_session(sid, {"identity": identity})
            await self.enter_room(sid, user_room(identity.user_id))
            if identity.session_id is not None:
                await self.enter_room(sid, session_room(identity.session_id))
                if self.rt.revocations.is_ended(identity.session_id):
                    # Ended while this socket authenticated: its room was already emptied.
                    raise Unauthorized("this session has ended; log in again")
            if self.path in JOIN_ON_CONNECT:
                for room in await subscriber_rooms(self.rt, identity.user_id):
                    await self.enter_room(sid, room)
            await self.on_authenticated(sid, identity, auth)
        except BackchannelError as exc:
            metrics.connects.labels(self.path.value, exc.code.value).inc()
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_dict()) from exc
        except Exception as exc:
            ref = uuid.uuid4().hex[:12]
            log.exception("connect failed", extra={"ref": ref, "namespace": self.path.value})
            metrics.connects.labels(self.path.value, "internal").inc()
            error = Internal(f"internal error (ref {ref})")
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, error.to_dict()
            ) from exc
        if not self.rt.emitter.socket_alive(self.path.value, sid):
            return self._gone_while_connecting()
        await self._register(sid, identity)
        if not self.rt.emitter.socket_alive(self.path.value, sid):
            # Gone while the socket count was written: undone here, as no disconnect follows.
            await self._unregister(sid)
            return self._gone_while_connecting()
        metrics.connects.labels(self.path.value, "ok").inc()
        return True

    def _gone_while_connecting(self) -> bool:
        """The transport closed while the connect handler awaited: python-socketio skips the
        disconnect of a socket still connecting, so nothing may be registered for it.
        Refusing makes python-socketio drop the sid and its rooms from the manager."""
        self.rt.metrics.connects.labels(self.path.value, "gone").inc()
        return False

    async def _register(self, sid: str, identity: Identity) -> None:
        """The session lifecycle of a connected socket, set up once (keyed by sid): live set,
        expiry timers, presence, socket counts. Undone exactly once by `_unregister`."""
        if sid in self._live:
            return
        self._live[sid] = identity.user_id
        self._schedule_expiry(sid, identity.expires_at)
        if self.rt.presence is not None:
            self.rt.presence.socket_opened(self.path.value, sid, identity.user_id)
        self.rt.metrics.connections.labels(self.path.value).inc()
        await self._count_socket(identity.user_id, opened=True)

    async def _unregister(self, sid: str) -> str | None:
        """Undo `_register`, whichever way the socket went (disconnect, expiry, a transport
        gone mid-connect, the sweep); the user id it was registered for, None if it was not."""
        user_id = self._live.pop(sid, None)
        if user_id is None:
            return None
        self._expiries.cancel(sid)
        self._warnings.cancel(sid)
        if self.rt.presence is not None:
            self.rt.presence.socket_closed(self.path.value, sid)
        self.rt.metrics.connections.labels(self.path.value).dec()
        await self._count_socket(user_id, opened=False)
        return user_id

    async def _disconnect(self, sid: str) -> None:
        self._event_buckets.forget(f"event:{sid}")
        identity = await self._identity(sid)
        if await self._unregister(sid) is None:
            return  # never finished connecting, or already swept
        if identity is not None:
            try:
                await self.on_disconnected(sid, identity)
            except Exception:
                log.exception("disconnect hook failed", extra={"namespace": self.path.value})

    async def reconcile(self) -> int:
        """Undo every registration, and drop every manager entry, of a socket of this
        namespace whose transport is gone without a disconnect; returns how many."""
        alive = self.rt.emitter.socket_alive
        namespace = self.path.value
        swept = 0
        for sid in list(self._live):
            if not alive(namespace, sid) and await self._unregister(sid) is not None:
                swept += 1
        manager = self.server.manager
        for sid, _ in list(manager.get_participants(namespace, None)):
            if manager.is_pre_connected(sid, namespace) or alive(namespace, sid):
                continue  # still connecting: its connect handler decides
            self._event_buckets.forget(f"event:{sid}")
            await manager.disconnect(sid, namespace, ignore_queue=True)
            swept += 1
        return swept

    async def _count_socket(self, user_id: str, *, opened: bool) -> None:
        """Keep the cluster-wide count of this user's sockets on namespaces that need one."""
        counts = self.rt.socket_counts
        if counts is None or self.path not in COUNTED_NAMESPACES:
            return
        try:
            if opened:
                await counts.opened(self.path.value, user_id)
            else:
                await counts.closed(self.path.value, user_id)
        except Exception as exc:
            report(log, "socket count update", exc)

    def _schedule_expiry(self, sid: str, expires_at: float) -> None:
        delay = max(0.0, expires_at - time.time())
        now = asyncio.get_running_loop().time()
        self._expiries.add(sid, now + delay)
        self._warnings.add(sid, now + max(0.0, delay - EXPIRING_NOTICE_SECONDS))

    def _warn_soon(self, sid: str) -> None:
        if sid in self._live:
            task = asyncio.ensure_future(self._warn(sid))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    async def _warn(self, sid: str) -> None:
        identity = await self._identity(sid)
        if identity is not None:
            await self.emit("session:expiring", self.expiring_notice(identity), to=sid)

    async def replace_identity(self, sid: str, identity: Identity) -> None:
        """A live socket presented a fresh token of its user: its expiry (and session) move."""
        async with self.session(sid) as session:
            previous = session.get("identity")
            session["identity"] = identity
        old_session = previous.session_id if isinstance(previous, Identity) else None
        if old_session != identity.session_id:
            if old_session is not None:
                await self.leave_room(sid, session_room(old_session))
            if identity.session_id is not None:
                await self.enter_room(sid, session_room(identity.session_id))
        if sid in self._live:
            self._schedule_expiry(sid, identity.expires_at)

    def _expire_soon(self, sid: str) -> None:
        if sid in self._live:
            task = asyncio.ensure_future(self._expire(sid))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    async def _expire(self, sid: str) -> None:
        error = TokenExpired("access token expired; reconnect with a fresh token")
        await self.emit("session:expired", error.to_dict(), to=sid)
        await self.disconnect(sid)

    async def on_authenticated(self, sid: str, identity: Identity, auth: Any) -> None:
        """Hook: the socket is authenticated and in its user room."""

    async def on_disconnected(self, sid: str, identity: Identity) -> None:
        """Hook: the socket has gone."""

    async def _identity(self, sid: str) -> Identity | None:
        try:
            session = await self.get_session(sid)
        except KeyError:
            return None
        identity = session.get("identity")
        return identity if isinstance(identity, Identity) else None

    # -- events ---------------------------------------------------------------------------

    async def _handle(self, event_name: str, sid: str, payload: tuple[Any, ...]) -> dict[str, Any]:
        started = time.perf_counter()
        # A log correlation id, not a secret: uuid4 would cost a getrandom() call per event.
        ref = f"{random.getrandbits(48):012x}"
        if self.rt.draining:
            # Refused before it starts, so nothing is stored: the client resends to another
            # node with the same client_id. What started before the drain is answered.
            self._event_metrics(event_name, "unavailable")[0].inc()
            return failed(Unavailable("server is shutting down; resend to another node"))
        token = correlation_id.set(ref)
        self.rt.inflight.enter()
        outcome = "ok"
        try:
            result = await self._run(event_name, sid, payload)
            return ok(result)
        except BackchannelError as exc:
            outcome = exc.code.value
            return failed(exc)
        except Exception as exc:
            outcome = "internal"
            if dependency_of(exc) is not None:  # an outage: one line a minute, not a traceback
                report(log, f"event {event_name} (ref {ref})", exc)
            else:
                log.exception("event failed", extra={"event": event_name, "ref": ref})
            return failed(Internal(f"internal error (ref {ref})"))
        finally:
            self.rt.inflight.leave()
            correlation_id.reset(token)
            events, latency = self._event_metrics(event_name, outcome)
            events.inc()
            latency.observe(time.perf_counter() - started)

    def _event_metrics(self, event_name: str, outcome: str) -> tuple[Any, Any]:
        """The labelled counter and histogram of an event's outcome, looked up once.

        `labels()` takes a lock and builds a key on every call; the combinations are few
        (this namespace's events times the closed catalogue of codes).
        """
        known = self._metric_children.get((event_name, outcome))
        if known is not None:
            return known
        label = event_name if event_name in self._events else "(unknown)"
        metrics = self.rt.metrics
        children = (
            metrics.events.labels(self.path.value, label, outcome),
            metrics.ack_latency.labels(self.path.value, label),
        )
        if label != "(unknown)":  # unknown names are the client's choice: not kept
            self._metric_children[(event_name, outcome)] = children
        return children

    async def _run(self, event_name: str, sid: str, payload: tuple[Any, ...]) -> Any:
        await self._event_buckets.hit(f"event:{sid}", self._event_rate)
        spec = self._events.get(event_name)
        if spec is None:
            raise Invalid(f"unknown event {event_name!r} on {self.path.value}")
        identity = await self._identity(sid)
        if identity is None:
            raise TokenExpired("session is not authenticated")
        if identity.expires_at <= time.time():
            raise TokenExpired()
        raw = payload[0] if payload else {}
        if spec.model is None:
            args: Any = raw
        else:
            try:
                args = spec.model.model_validate(raw if raw is not None else {})
            except ValidationError as exc:
                raise Invalid("invalid payload", validation_details(exc.errors())) from None
        context = EventContext(sid, identity.user_id, identity.role, self.path)
        return await spec.handler(self, context, args)
