"""msgpack over every transport: one emit reaching websocket and long-polling sockets alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import socketio
from socketio import packet as sio_packet

from backchannel.rooms.names import Namespace
from backchannel.server.realtime import ContractMsgPackPacket
from backchannel.server.settings import Settings
from tests.nodes import Node, node


@pytest.fixture(params=[True, False], ids=["fast-fanout", "library-fanout"])
async def msgpack_node(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    # Short pings: a polling client's disconnect waits for its pending poll to return.
    configured = settings.model_copy(
        update={
            "msgpack": True,
            "fast_fanout": request.param,
            "ping_interval_seconds": 1.0,
            "ping_timeout_seconds": 1.0,
        }
    )
    async with node(configured) as started:
        yield started


async def _client(url: str, token: str, transports: list[str] | None) -> tuple[Any, list[Any]]:
    client = socketio.AsyncClient(reconnection=False, serializer="msgpack")
    pushes: list[Any] = []
    arrived = asyncio.Event()

    async def on_push(data: Any) -> None:
        pushes.append(data)
        arrived.set()

    client.on("server:resync", on_push, namespace="/chat")
    client.arrived = arrived  # type: ignore[attr-defined]
    await client.connect(
        url, namespaces=["/chat"], auth={"token": token}, transports=transports, wait_timeout=5
    )
    return client, pushes


async def test_one_msgpack_emit_reaches_websocket_polling_and_upgraded_sockets(
    msgpack_node: Node,
) -> None:
    fan = await msgpack_node.api.register()
    clients = [
        await _client(msgpack_node.url, fan.access_token, transports)
        for transports in (["websocket"], ["polling"], None)
    ]
    try:
        # Two rounds: the first while the default client may still be polling, the second
        # after every poll has been answered at least once.
        for round_ in range(2):
            for client, _ in clients:
                client.arrived.clear()
            await msgpack_node.emitter.to_local_sockets(
                Namespace.CHAT, "server:resync", {"round": round_, "blob": "é" * 300}
            )
            for client, _ in clients:
                await asyncio.wait_for(client.arrived.wait(), 5)
        for client, pushes in clients:
            assert pushes == [{"round": 0, "blob": "é" * 300}, {"round": 1, "blob": "é" * 300}]
            # Acks too, on every transport.
            ack = await client.call("no:such:event", {}, namespace="/chat", timeout=5)
            assert ack["error"]["code"] == "invalid"
            assert client.connected
    finally:
        for client, _ in clients:
            await client.disconnect()


def test_a_msgpack_disconnect_carries_no_data_key() -> None:
    # socket.io-msgpack-parser refuses a DISCONNECT with a `data` key, even nil.
    encoded = ContractMsgPackPacket(sio_packet.DISCONNECT, namespace="/chat").encode()
    assert msgpack.loads(encoded) == {"type": sio_packet.DISCONNECT, "nsp": "/chat"}
    event = ContractMsgPackPacket(sio_packet.EVENT, namespace="/chat", data=["x", None]).encode()
    assert msgpack.loads(event) == {"type": sio_packet.EVENT, "nsp": "/chat", "data": ["x", None]}
