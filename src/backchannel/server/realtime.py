"""The Socket.IO server: serializer, cluster manager, limits, and websocket compression."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as engineio_aiohttp

from backchannel.rooms.fanout import WS_ATTRIBUTE, FanoutServer
from backchannel.rooms.names import Namespace
from backchannel.server.cluster import ClusterManager, LocalManager
from backchannel.server.engine_sockets import EngineServer
from backchannel.server.proxies import parse_networks
from backchannel.server.settings import Settings
from backchannel.server.socket_guard import GuardedServer


class _WebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket, declining permessage-deflate unless configured.

    Browsers always offer deflate and aiohttp accepts it by default; its compressor state costs
    about 130 kB per connection and makes connects several times slower. The response is also
    recorded on the Engine.IO socket, where the broadcast fast path (`rooms.fanout`) finds it.
    """

    compress = False

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=self.compress
        )
        await self._sock.prepare(request)
        self.environ = environ
        eio_socket = getattr(self.handler, "__self__", None)
        if eio_socket is not None:
            setattr(eio_socket, WS_ATTRIBUTE, self._sock)
        await self.handler(self)
        return self._sock


class _WebSocketWithDeflate(_WebSocket):
    compress = True


class _Waiters(list[Any]):
    """The futures waiting on a queue: a list with the one deque method asyncio calls."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class LeanQueue(asyncio.Queue[Any]):
    """Engine.IO's per-socket send queue, about 2.4 kB lighter than `asyncio.Queue`.

    An empty `collections.deque` costs ~600 bytes and an asyncio.Queue holds four (items,
    getters, putters, and its Event's waiters); at most a few packets and one waiting writer
    ever sit in this one, so plain lists serve.
    """

    def __init__(self) -> None:
        super().__init__()
        self._getters = _Waiters()
        self._putters = _Waiters()
        self._finished._waiters = []  # type: ignore[attr-defined]

    def _init(self, maxsize: int) -> None:
        self._queue: list[Any] = []

    def _get(self) -> Any:
        return self._queue.pop(0)

    def _put(self, item: Any) -> None:
        self._queue.append(item)


class _Server(GuardedServer, socketio.AsyncServer):  # type: ignore[misc]
    """The library's Socket.IO server behind the packet guard."""


class _FanoutServer(GuardedServer, FanoutServer):
    """`FanoutServer` behind the packet guard."""


class _LeanServer(_Server):
    """The guarded server over `EngineServer` (loop-owned websockets)."""

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer


class _LeanFanoutServer(_FanoutServer):
    """The guarded `FanoutServer` over `EngineServer`."""

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer


def _server_class(settings: Settings) -> type[socketio.AsyncServer]:
    # Accepting deflate keeps the library's websocket path: compressed frames are aiohttp's.
    lean = settings.lean_websockets and not settings.ws_compression
    if settings.fast_fanout:
        return _LeanFanoutServer if lean else _FanoutServer
    return _LeanServer if lean else _Server


def build_socketio(settings: Settings) -> socketio.AsyncServer:
    """The `AsyncServer`, clustered through Redis when `REDIS_URL` is set."""
    manager: LocalManager | ClusterManager
    if settings.redis_url:
        manager = ClusterManager(
            settings.redis_url,
            channel=f"{settings.redis_prefix}:socketio",
            ping_interval=settings.redis_ping_interval_seconds,
            retry_max=settings.redis_retry_max_seconds,
            socket_timeout=settings.redis_timeout_seconds,
        )
    else:
        manager = LocalManager()
    manager.fast_fanout = settings.fast_fanout
    origins: str | list[str] | None = settings.cors_origin_list or None
    if origins is None and settings.env == "dev":
        origins = "*"
    sio = _server_class(settings)(
        async_mode="aiohttp",
        client_manager=manager,
        # Only our namespaces connect; python-socketio would otherwise accept "/" unauthenticated.
        namespaces=[ns.value for ns in Namespace],
        serializer="msgpack" if settings.msgpack else "default",
        cors_allowed_origins=origins,
        max_http_buffer_size=settings.max_socket_message_bytes,
        ping_interval=settings.ping_interval_seconds,
        ping_timeout=settings.ping_timeout_seconds,
        http_compression=False,
        logger=False,
        engineio_logger=False,
    )
    sio.guard(
        connect_deadline=settings.connect_deadline_seconds,
        max_unauthenticated_per_ip=settings.max_unauthenticated_per_ip,
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )
    sio.eio.max_ws_fragments = settings.max_ws_fragments
    websocket = _WebSocketWithDeflate if settings.ws_compression else _WebSocket
    sio.eio._async = {**sio.eio._async, "websocket": websocket}
    sio.eio.create_queue = LeanQueue
    return sio
