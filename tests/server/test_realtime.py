"""The Socket.IO server declines permessage-deflate unless asked: it costs ~130 kB a socket."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings


async def _negotiated_compression(base_url: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{base_url}/socket.io/?EIO=4&transport=websocket", compress=15) as ws,
    ):
        opening = await ws.receive_str()
        assert opening.startswith("0{")  # Engine.IO OPEN packet
        return ws.compress


async def test_a_browser_offering_deflate_gets_an_uncompressed_socket(base_url: str) -> None:
    assert await _negotiated_compression(base_url) == 0


async def test_deflate_can_be_turned_back_on(settings: Settings) -> None:
    server = TestServer(
        create_app(settings.model_copy(update={"ws_compression": True})), host="127.0.0.1"
    )
    await server.start_server()
    try:
        assert await _negotiated_compression(str(server.make_url("")).rstrip("/")) == 15
    finally:
        await server.close()


async def test_msgpack_clients_work_when_the_server_uses_msgpack(settings: Settings) -> None:
    import socketio

    from tests.support import Api

    server = TestServer(create_app(settings.model_copy(update={"msgpack": True})), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    client = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(base_url, session).register()
        await client.connect(
            base_url,
            namespaces=["/chat"],
            auth={"token": fan.access_token},
            transports=["websocket"],
        )
        ack = await client.call("no:such:event", {}, namespace="/chat", timeout=5)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid"
    finally:
        await client.disconnect()
        await server.close()
