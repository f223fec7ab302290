"""What the fast paths expect of their libraries' private names (see `server.fast_paths`).

Each check looks at the library's own class (never our subclass, whose overrides would hide a
change): a name exists, a method's parameters are the ones it is called with or overridden
with (extra ones optional), a class still accepts the `__class__` swap, a hook we override is
still called. `shape_mismatch(path)` gives the first difference for one fast path;
`check_cluster` refuses a node whose pub/sub hooks moved (no fallback exists there).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import engineio
import socketio
from aiohttp import web, web_protocol
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from engineio.async_socket import AsyncSocket
from socketio import async_pubsub_manager

from backchannel.server.engine_sockets import LeanSocket

# Every fast path, each switchable on its own.
ENGINE_WEBSOCKET = "engine_websocket"  # server.engine_sockets: websockets leave aiohttp
BROADCAST_FRAMES = "broadcast_frames"  # rooms.fanout: one frame written to idle sockets; acks
ROOM_INDEX = "room_index"  # rooms.fanout: a disconnect leaves only the socket's own rooms
POLLING = "polling"  # server.engine_polling: whole POST bodies, exact pingInterval
LEAN_QUEUE = "lean_queue"  # server.realtime.LeanQueue: the lighter per-socket send queue
PATHS = (ENGINE_WEBSOCKET, BROADCAST_FRAMES, ROOM_INDEX, POLLING, LEAN_QUEUE)

SOCKETIO, ENGINEIO, AIOHTTP = "python-socketio", "python-engineio", "aiohttp"
ASYNCIO = "asyncio"  # the standard library: its version is Python's

# The library a failed probe is blamed on, per path (a shape check names its own).
LIBRARY_OF = {
    ENGINE_WEBSOCKET: ENGINEIO,
    BROADCAST_FRAMES: SOCKETIO,
    ROOM_INDEX: SOCKETIO,
    POLLING: ENGINEIO,
    LEAN_QUEUE: ASYNCIO,
}


@dataclass(frozen=True)
class Mismatch:
    """What differs from what a fast path expects, in which library."""

    library: str
    what: str

    def line(self, path: str) -> str:
        """The one warning line for `path`."""
        return (
            f"fast path {path} switched off: {self.library} {library_version(self.library)}: "
            f"{self.what}; using the library's own path"
        )


def library_version(library: str) -> str:
    """The installed version of a distribution (Python's for asyncio)."""
    if library == ASYNCIO:
        return "python " + ".".join(map(str, sys.version_info[:3]))
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def method_problem(owner: Any, name: str, params: tuple[str, ...]) -> str | None:
    """Why `owner.name` is not a method taking `params` (after self), or None.

    Parameters after the expected ones are fine if they are optional: a call with the expected
    ones still binds. A renamed, reordered, missing or newly required one is a mismatch.
    """
    label = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"
    method = getattr(owner, name, None)
    if method is None:
        return f"{label} is missing"
    if not callable(method):
        return f"{label} is not callable"
    try:
        found = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return f"{label} has no inspectable signature"
    if inspect.isclass(owner) and not isinstance(inspect.getattr_static(owner, name), staticmethod):
        found = found[1:]  # self
    for position, wanted in enumerate(params):
        if position >= len(found):
            return f"{label} no longer takes {wanted!r}"
        if found[position].kind is inspect.Parameter.VAR_POSITIONAL:
            return None  # (*args, **kwargs): a pass-through takes what it is given
        if found[position].name != wanted:
            names = tuple(p.name for p in found)
            return f"{label}{names} is not {label}{params}"
    for extra in found[len(params) :]:
        if extra.default is inspect.Parameter.empty and extra.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            return f"{label} has a new required parameter {extra.name!r}"
    return None


def attribute_problem(owner: Any, *names: str) -> str | None:
    """Why `owner` lacks one of `names` (an instance or class attribute, or a slot), or None."""
    label = getattr(owner, "__name__", type(owner).__name__)
    for name in names:
        if not hasattr(owner, name):
            return f"{label}.{name} is missing"
    return None


Check = tuple[str, Callable[[], str | None]]


def _first(checks: Iterable[Check]) -> Mismatch | None:
    for library, check in checks:
        try:
            problem = check()
        except Exception as exc:  # a check that cannot even run is a mismatch too
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            return Mismatch(library, problem)
    return None


def _library_sockets() -> tuple[Any, Any]:
    """A throwaway python-engineio server and socket, to look at instance attributes."""
    server = engineio.AsyncServer(async_mode="aiohttp", monitor_clients=False)
    return server, AsyncSocket(server, "self-check")


def _swap_problem() -> str | None:
    """Whether an `AsyncSocket` still becomes a `LeanSocket` by assigning `__class__`."""
    _, sock = _library_sockets()
    try:
        sock.__class__ = LeanSocket
    except TypeError as exc:
        return f"AsyncSocket cannot be switched to LeanSocket ({exc})"
    return None


def _engine_websocket_checks() -> Iterable[Check]:
    server, sock = _library_sockets()
    server_cls, socket_cls = engineio.AsyncServer, AsyncSocket
    yield ENGINEIO, lambda: method_problem(server_cls, "_trigger_event", ("event",))
    connect_params = ("environ", "transport", "jsonp_index")
    yield ENGINEIO, lambda: method_problem(server_cls, "_handle_connect", connect_params)
    yield ENGINEIO, lambda: method_problem(server_cls, "__init__", ("async_mode",))
    yield (
        ENGINEIO,
        lambda: (
            None
            if "monitor_clients" in inspect.signature(server_cls.__init__).parameters
            else "AsyncServer() no longer takes monitor_clients"
        ),
    )
    yield ENGINEIO, lambda: method_problem(socket_cls, "_upgrade_websocket", ("environ",))
    yield ENGINEIO, lambda: method_problem(socket_cls, "schedule_ping", ())
    yield ENGINEIO, lambda: method_problem(socket_cls, "check_ping_timeout", ())
    yield ENGINEIO, lambda: method_problem(socket_cls, "send", ("pkt",))
    yield ENGINEIO, lambda: method_problem(socket_cls, "close", ("wait", "abort", "reason"))
    yield ENGINEIO, lambda: attribute_problem(server, "_async", "sockets", "reason")
    yield (
        ENGINEIO,
        lambda: (
            None if "translate_request" in server._async else "_async has no 'translate_request'"
        ),
    )
    yield (
        ENGINEIO,
        lambda: attribute_problem(
            server.reason, "PING_TIMEOUT", "CLIENT_DISCONNECT", "TRANSPORT_CLOSE", "TRANSPORT_ERROR"
        ),
    )
    yield (
        ENGINEIO,
        lambda: attribute_problem(
            sock, "queue", "last_ping", "connected", "upgrading", "upgraded", "closing", "closed"
        ),
    )
    yield ENGINEIO, lambda: attribute_problem(engineio_aiohttp, "translate_request")
    yield ENGINEIO, _swap_problem
    handler = web_protocol.RequestHandler
    yield (
        AIOHTTP,
        lambda: attribute_problem(handler, "_message_tail", "_parser", "_manager", "transport"),
    )
    yield AIOHTTP, lambda: method_problem(handler, "keep_alive", ("val",))
    yield AIOHTTP, lambda: method_problem(web.Server, "connection_lost", ("handler", "exc"))
    yield AIOHTTP, lambda: attribute_problem(web.BaseRequest, "protocol", "transport")


def _broadcast_frames_checks() -> Iterable[Check]:
    sio_cls, manager_cls = socketio.AsyncServer, socketio.AsyncManager
    yield (
        SOCKETIO,
        lambda: method_problem(
            sio_cls,
            "_handle_event_internal",
            ("server", "sid", "eio_sid", "data", "namespace", "id"),
        ),
    )
    yield SOCKETIO, lambda: method_problem(sio_cls, "_send_packet", ("eio_sid", "pkt"))
    yield SOCKETIO, lambda: method_problem(sio_cls, "_send_eio_packet", ("eio_sid", "eio_pkt"))
    yield SOCKETIO, lambda: method_problem(sio_cls, "_trigger_event", ("event", "namespace"))
    yield (
        SOCKETIO,
        lambda: attribute_problem(
            socketio.AsyncServer(async_mode="aiohttp"), "not_handled", "eio", "packet_class"
        ),
    )
    yield (
        SOCKETIO,
        lambda: method_problem(
            manager_cls,
            "emit",
            ("event", "data", "namespace", "room", "skip_sid", "callback", "to"),
        ),
    )
    yield SOCKETIO, lambda: method_problem(manager_cls, "get_participants", ("namespace", "room"))
    yield SOCKETIO, lambda: attribute_problem(socketio.packet.Packet, "json")
    yield ENGINEIO, lambda: method_problem(engineio.AsyncServer, "send", ("sid", "data"))
    yield ENGINEIO, lambda: method_problem(eio_packet.Packet, "encode", ("b64",))
    yield ASYNCIO, lambda: attribute_problem(asyncio.Queue(), "_getters")
    yield AIOHTTP, lambda: attribute_problem(web.WebSocketResponse, "closed", "compress")


def _room_index_checks() -> Iterable[Check]:
    manager = socketio.AsyncManager()
    cls = socketio.AsyncManager
    yield SOCKETIO, lambda: method_problem(cls, "basic_disconnect", ("sid", "namespace"))
    yield (
        SOCKETIO,
        lambda: method_problem(cls, "basic_enter_room", ("sid", "namespace", "room", "eio_sid")),
    )
    yield SOCKETIO, lambda: method_problem(cls, "basic_leave_room", ("sid", "namespace", "room"))
    yield SOCKETIO, lambda: method_problem(cls, "get_rooms", ("sid", "namespace"))
    yield (
        SOCKETIO,
        lambda: attribute_problem(
            manager, "rooms", "callbacks", "pending_connect", "pending_disconnect"
        ),
    )


def _polling_checks() -> Iterable[Check]:
    server, sock = _library_sockets()
    cls = engineio.AsyncServer
    yield ENGINEIO, lambda: method_problem(cls, "handle_request", ("request",))
    yield ENGINEIO, lambda: method_problem(cls, "_make_response", ("response_dict", "environ"))
    yield ENGINEIO, lambda: method_problem(cls, "_ok", ("packets", "headers", "jsonp_index"))
    yield ENGINEIO, lambda: method_problem(cls, "_bad_request", ("message",))
    yield ENGINEIO, lambda: method_problem(cls, "_cors_allowed_origins", ("environ",))
    yield ENGINEIO, lambda: method_problem(cls, "_trigger_event", ("event",))
    yield ENGINEIO, lambda: method_problem(AsyncSocket, "receive", ("pkt",))
    yield (
        ENGINEIO,
        lambda: attribute_problem(
            server, "_async", "cors_allowed_origins", "ping_interval_grace_period", "reason"
        ),
    )
    yield ENGINEIO, lambda: attribute_problem(sock, "queue", "upgraded", "connected")
    yield ENGINEIO, lambda: attribute_problem(eio_packet.Packet(eio_packet.NOOP), "encode_cache")


def _lean_queue_checks() -> Iterable[Check]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    yield ASYNCIO, lambda: attribute_problem(queue, "_getters", "_putters", "_finished")
    yield ASYNCIO, lambda: attribute_problem(queue._finished, "_waiters")  # type: ignore[attr-defined]
    yield ASYNCIO, lambda: method_problem(asyncio.Queue, "_init", ("maxsize",))
    yield ASYNCIO, lambda: method_problem(asyncio.Queue, "_get", ())
    yield ASYNCIO, lambda: method_problem(asyncio.Queue, "_put", ("item",))
    yield ENGINEIO, lambda: method_problem(engineio.AsyncServer, "create_queue", ())


CHECKS: dict[str, Callable[[], Iterable[Check]]] = {
    ENGINE_WEBSOCKET: _engine_websocket_checks,
    BROADCAST_FRAMES: _broadcast_frames_checks,
    ROOM_INDEX: _room_index_checks,
    POLLING: _polling_checks,
    LEAN_QUEUE: _lean_queue_checks,
}


def shape_mismatch(path: str) -> Mismatch | None:
    """The first private name `path` uses that is not what it expects, or None."""
    try:
        return _first(CHECKS[path]())
    except Exception as exc:  # building the checks needs the library too
        return Mismatch(LIBRARY_OF[path], f"self-check could not run: {type(exc).__name__}: {exc}")


def _calls(owner: type, method: str, hook: str) -> str | None:
    """Why the library's `owner.method` no longer calls `self.<hook>` (which we override)."""
    try:
        source = inspect.getsource(getattr(owner, method))
    except (AttributeError, OSError, TypeError):
        return None  # no source installed: the signatures are all that can be checked
    if f"self.{hook}" in source:
        return None
    return f"{owner.__name__}.{method} no longer calls {hook}"


def _cluster_checks() -> Iterable[Check]:
    pubsub = async_pubsub_manager.AsyncPubSubManager
    yield SOCKETIO, lambda: method_problem(pubsub, "_thread", ())
    yield SOCKETIO, lambda: method_problem(pubsub, "_listen", ())
    yield SOCKETIO, lambda: method_problem(pubsub, "_publish", ("data",))
    yield SOCKETIO, lambda: _calls(pubsub, "initialize", "_thread")
    yield SOCKETIO, lambda: _calls(pubsub, "emit", "_publish")
    for handler in ("emit", "callback", "disconnect", "enter_room", "leave_room", "close_room"):
        yield (
            SOCKETIO,
            functools.partial(method_problem, pubsub, f"_handle_{handler}", ("message",)),
        )
    yield (
        SOCKETIO,
        lambda: method_problem(
            socketio.AsyncRedisManager, "__init__", ("url", "channel", "write_only", "logger")
        ),
    )
    yield (
        SOCKETIO,
        lambda: (
            None
            if "redis_options" in inspect.signature(socketio.AsyncRedisManager.__init__).parameters
            else "AsyncRedisManager() no longer takes redis_options"
        ),
    )


def check_cluster() -> None:
    """Refuse to start if the pub/sub hooks `server.cluster` replaces are not the library's.

    No fallback: the library's own listener and publisher know nothing of routed channels,
    room moves or the link state, so serving a cluster on them would lose deliveries.
    """
    mismatch = _first(_cluster_checks())
    if mismatch is not None:
        raise RuntimeError(
            f"cluster_pubsub: {mismatch.library} {library_version(mismatch.library)}: "
            f"{mismatch.what}; server/cluster.py needs updating (docs/internals.md)"
        )
