"""The Socket.IO server: serializer, cluster manager, limits, and websocket compression."""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as engineio_aiohttp

from backchannel.rooms.names import Namespace
from backchannel.server.cluster import ClusterManager, LocalManager
from backchannel.server.settings import Settings


class _WebSocketWithoutDeflate(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket, declining permessage-deflate.

    Browsers always offer deflate and aiohttp accepts it by default; its compressor state costs
    about 130 kB per connection and makes connects several times slower.
    """

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def build_socketio(settings: Settings) -> socketio.AsyncServer:
    """The `AsyncServer`, clustered through Redis when `REDIS_URL` is set."""
    manager: socketio.AsyncManager
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
    origins: str | list[str] | None = settings.cors_origin_list or None
    if origins is None and settings.env == "dev":
        origins = "*"
    sio = socketio.AsyncServer(
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
    if not settings.ws_compression:
        sio.eio._async = {**sio.eio._async, "websocket": _WebSocketWithoutDeflate}
    return sio
