"""The Socket.IO server: serializer, cluster manager, limits, and websocket compression."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as sio_packet
from socketio.msgpack_packet import MsgPackPacket

from backchannel.errors import NotFound
from backchannel.rooms.fanout import TRANSPORT_ATTRIBUTE, WS_ATTRIBUTE, FanoutServer
from backchannel.rooms.names import Namespace
from backchannel.server.cluster import ClusterManager, LocalManager
from backchannel.server.engine_polling import EngineBase
from backchannel.server.engine_sockets import EngineServer
from backchannel.server.proxies import parse_networks
from backchannel.server.send_queue import CappedQueue, LeanQueue
from backchannel.server.settings import Settings
from backchannel.server.socket_guard import GuardedServer


class ContractMsgPackPacket(MsgPackPacket):  # type: ignore[misc]
    """python-socketio's msgpack packet, leaving out `data` when there is none.

    The library writes `data: nil` into every packet, DISCONNECT included, and
    socket.io-msgpack-parser refuses a DISCONNECT that has a `data` key ("invalid payload"):
    a token expiry on one namespace became a parse error that dropped the whole connection.
    """

    def _to_dict(self) -> dict[str, Any]:
        encoded: dict[str, Any] = super()._to_dict()
        if encoded.get("data") is None:
            del encoded["data"]
        return encoded


class ContractServer(socketio.AsyncServer):  # type: ignore[misc]
    """What every Backchannel Socket.IO server adds to the library's, whatever its transport.

    - A namespace nobody registered (`/` included) is refused with the contract's error
      object, as a refused token is, not the library's bare "Unable to connect" string
      (socket.io-client then shows an empty message and no `data`).
    - A binary Engine.IO packet (msgpack) going to several sockets is copied per socket:
      python-engineio caches a packet's encoding whichever transport asked first, so the raw
      bytes cached for a websocket came back for a long-poll's text payload (TypeError: the
      poll answered 500) and the poll's base64 text went out on websockets. Text packets
      encode the same for both transports and stay shared.
    """

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        if namespace not in self.namespace_handlers:
            error = NotFound(f"no namespace {namespace}")
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": error.message, "data": error.to_dict()},
                    namespace=namespace,
                ),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        if eio_pkt.binary:
            eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, eio_pkt.data)
        await super()._send_eio_packet(eio_sid, eio_pkt)


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
            setattr(eio_socket, TRANSPORT_ATTRIBUTE, request.transport)
        await self.handler(self)
        return self._sock


class _WebSocketWithDeflate(_WebSocket):
    compress = True


class _Server(GuardedServer, ContractServer):
    """The library's Socket.IO server over `EngineBase` (the library's websockets), guarded."""

    def _engineio_server_class(self) -> type[EngineBase]:
        return EngineBase


class _LeanServer(GuardedServer, ContractServer):
    """The guarded server over `EngineServer` (loop-owned websockets)."""

    def _engineio_server_class(self) -> type[EngineBase]:
        return EngineServer


class _FanoutServer(GuardedServer, ContractServer, FanoutServer):
    """The guarded `FanoutServer` over `EngineBase`."""

    def _engineio_server_class(self) -> type[EngineBase]:
        return EngineBase


class _LeanFanoutServer(GuardedServer, ContractServer, FanoutServer):
    """The guarded `FanoutServer` over `EngineServer`."""

    def _engineio_server_class(self) -> type[EngineBase]:
        return EngineServer


def server_class(*, lean: bool, fanout: bool) -> type[socketio.AsyncServer]:
    """The server class for the websocket handover (`lean`) and broadcast fast path choices."""
    if fanout:
        return _LeanFanoutServer if lean else _FanoutServer
    return _LeanServer if lean else _Server


def build_socketio(
    settings: Settings, fast_paths: Mapping[str, bool] | None = None
) -> socketio.AsyncServer:
    """The `AsyncServer`, clustered through Redis when `REDIS_URL` is set.

    `fast_paths` (from `server.fast_paths.select`) switches off the fast paths whose start-up
    self-check failed: each then takes the library's own path. Missing names are on.
    """
    fast = fast_paths or {}
    # Accepting deflate keeps the library's websocket path: compressed frames are aiohttp's.
    lean = settings.lean_websockets and not settings.ws_compression
    lean = lean and fast.get("engine_websocket", True)
    fanout = settings.fast_fanout and fast.get("broadcast_frames", True)
    manager: LocalManager | ClusterManager
    if settings.redis_url:
        manager = ClusterManager(
            settings.redis_url,
            channel=f"{settings.redis_prefix}:socketio",
            prefix=settings.redis_prefix,
            routing=settings.cluster_routing,
            pubsub=settings.cluster_pubsub,
            ping_interval=settings.redis_ping_interval_seconds,
            retry_max=settings.redis_retry_max_seconds,
            socket_timeout=settings.redis_timeout_seconds,
        )
    else:
        manager = LocalManager()
    manager.fast_fanout = fanout
    manager.room_index = fast.get("room_index", True)
    origins: str | list[str] | None = settings.cors_origin_list or None
    if origins is None and settings.env == "dev":
        origins = "*"
    sio = server_class(lean=lean, fanout=fanout)(
        async_mode="aiohttp",
        client_manager=manager,
        # Only our namespaces connect; python-socketio would otherwise accept "/" unauthenticated.
        namespaces=[ns.value for ns in Namespace],
        serializer=ContractMsgPackPacket if settings.msgpack else "default",
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
    sio.eio.own_polling = fast.get("polling", True)
    # The byte cap lives in the queue, so the library's own queue is never used (send_queue).
    queue_class = LeanQueue if fast.get("lean_queue", True) else CappedQueue
    sio.eio.create_queue = queue_class.for_server(sio.eio)
    sio.eio.send_buffer_bytes = settings.socket_send_buffer_bytes
    return sio
