"""The broadcast fast path delivers what python-socketio would, to the same sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import socketio
from aiohttp.test_utils import TestServer

from backchannel.rooms.fanout import FanoutMixin, websocket_frame
from backchannel.rooms.names import Namespace, session_room, user_room
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.runtime import Runtime
from backchannel.server.settings import Settings
from tests.accounts_support import claims_of
from tests.support import Api, Sockets

ROOM = "subscribers:test"


def runtime(server: TestServer) -> Runtime:
    return server.app[RUNTIME]


@pytest.fixture
async def node_b(cluster_settings: Settings) -> AsyncIterator[TestServer]:
    """A second node, clustered through Redis."""
    test_server = TestServer(create_app(cluster_settings), host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


def test_events_encode_as_the_library_encodes_them() -> None:
    from socketio import packet

    from backchannel.rooms.fanout import _encode_event

    for namespace, data in (
        ("/chat", ["news", {"a": [1, "é", None], "b": True}]),
        ("/", ["hello"]),
        ("/ppv", ["x", 1, "two"]),
        ("/chat", ["bin", {"blob": b"\x00\x01"}]),
    ):
        expected = packet.Packet(packet.EVENT, namespace=namespace, data=data).encode()
        assert _encode_event(packet.Packet, namespace, data) == expected


def test_acks_encode_as_the_library_encodes_them_and_binary_ones_are_left_to_it() -> None:
    from socketio import packet
    from socketio.msgpack_packet import MsgPackPacket

    from backchannel.rooms.fanout import _encode_json

    for namespace, ack_id, data in (
        ("/chat", 7, [{"ok": True, "data": {"seq": 1, "body": "é"}}]),
        ("/", 12345, [{"ok": False}]),
        ("/ppv", 0, []),
    ):
        expected = packet.Packet(packet.ACK, namespace=namespace, id=ack_id, data=data).encode()
        assert _encode_json(packet.Packet, packet.ACK, namespace, data, ack_id) == expected
    assert _encode_json(packet.Packet, packet.ACK, "/chat", [{"blob": b"\x00"}], 1) is None
    assert _encode_json(MsgPackPacket, packet.ACK, "/chat", [{}], 1) is None


def test_frames_use_the_shortest_length_encoding() -> None:
    assert websocket_frame("42") == b"\x81\x0242"
    assert websocket_frame(b"\x01" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert websocket_frame("x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")


async def test_a_room_broadcast_reaches_every_member_once_but_not_the_skipped_one(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = runtime(server)
    members = [await api.register() for _ in range(3)]
    outsider = await api.register()
    conns = [await sockets.connect("/chat", u, events=("news",)) for u in members]
    lurker = await sockets.connect("/chat", outsider, events=("news",))
    for conn in conns:
        await rt.emitter.join(Namespace.CHAT, conn.client.get_sid("/chat"), ROOM)
    before = FanoutMixin.fast_writes

    await rt.emitter.to_room(
        Namespace.CHAT, ROOM, "news", {"n": 1}, skip_sid=conns[0].client.get_sid("/chat")
    )

    assert await conns[1].wait_for("news") == [{"n": 1}]
    assert await conns[2].wait_for("news") == [{"n": 1}]
    await conns[0].assert_nothing("news")
    await lurker.assert_nothing("news")
    assert FanoutMixin.fast_writes - before == 2


async def test_a_socket_in_several_rooms_gets_one_copy_and_other_namespaces_none(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = runtime(server)
    a, b = await api.register(), await api.register()
    chat = await sockets.connect("/chat", a, events=("hello",))
    await rt.emitter.join(Namespace.CHAT, chat.client.get_sid("/chat"), user_room(b.id))
    typing = await sockets.connect("/typing", a, events=("hello",))

    await rt.emitter.to_users(Namespace.CHAT, [a.id, b.id], "hello", {"to": "both"})

    assert await chat.wait_for("hello") == [{"to": "both"}]
    await chat.assert_nothing("hello")
    await typing.assert_nothing("hello")


async def test_broadcasts_and_acks_arrive_in_the_order_they_were_sent(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = runtime(server)
    fan = await api.register()
    conn = await sockets.connect("/chat", fan, events=("tick",))
    sid = conn.client.get_sid("/chat")

    async def burst() -> None:
        for i in range(200):
            if i % 3:
                await rt.emitter.to_user(Namespace.CHAT, fan.id, "tick", i)
            else:
                await rt.emitter.to_socket(Namespace.CHAT, sid, "tick", i)

    ack, _ = await asyncio.gather(conn.call("no:such:event", {}), burst())

    assert ack["ok"] is False
    assert await conn.wait_for("tick", 200) == list(range(200))


async def test_long_polling_clients_still_get_broadcasts(
    server: TestServer, base_url: str, api: Api
) -> None:
    rt = runtime(server)
    fan = await api.register()
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue[object] = asyncio.Queue()
    client.on("news", got.put, namespace="/chat")
    await client.connect(
        base_url, namespaces=["/chat"], auth={"token": fan.access_token}, transports=["polling"]
    )
    try:
        before = FanoutMixin.fast_writes
        await rt.emitter.to_user(Namespace.CHAT, fan.id, "news", {"via": "polling"})
        assert await asyncio.wait_for(got.get(), 5) == {"via": "polling"}
        assert FanoutMixin.fast_writes == before
    finally:
        await client.disconnect()


async def test_msgpack_broadcasts_arrive_as_binary_frames(settings: Settings) -> None:
    server = TestServer(create_app(settings.model_copy(update={"msgpack": True})), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    client = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    got: asyncio.Queue[object] = asyncio.Queue()
    client.on("news", got.put, namespace="/chat")
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(base_url, session).register()
        await client.connect(
            base_url,
            namespaces=["/chat"],
            auth={"token": fan.access_token},
            transports=["websocket"],
        )
        before = FanoutMixin.fast_writes
        await runtime(server).emitter.to_user(Namespace.CHAT, fan.id, "news", {"price": 499})
        assert await asyncio.wait_for(got.get(), 5) == {"price": 499}
        assert FanoutMixin.fast_writes == before + 1
    finally:
        await client.disconnect()
        await server.close()


async def test_compressed_websockets_take_the_librarys_path(settings: Settings) -> None:
    server = TestServer(
        create_app(settings.model_copy(update={"ws_compression": True})), host="127.0.0.1"
    )
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(base_url, session).register()
            async with session.ws_connect(
                f"{base_url}/socket.io/?EIO=4&transport=websocket", compress=15
            ) as ws:
                assert (await ws.receive_str()).startswith("0{")
                await ws.send_str("40/chat," + json.dumps({"token": fan.access_token}))
                assert (await ws.receive_str()).startswith("40/chat,")
                before = FanoutMixin.fast_writes
                await runtime(server).emitter.to_user(Namespace.CHAT, fan.id, "news", {"z": 1})
                frame = await asyncio.wait_for(ws.receive_str(), 5)
                assert frame == '42/chat,["news",{"z":1}]'
                assert FanoutMixin.fast_writes == before
    finally:
        await server.close()


async def test_a_broadcast_on_one_node_reaches_sockets_on_the_other(
    cluster_settings: Settings, node_b: TestServer
) -> None:
    node_a = TestServer(create_app(cluster_settings), host="127.0.0.1")
    await node_a.start_server()
    try:
        url_a = str(node_a.make_url("")).rstrip("/")
        url_b = str(node_b.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            fan = await Api(url_a, session).register()
        on_a, on_b = Sockets(url_a), Sockets(url_b)
        try:
            here = await on_a.connect("/chat", fan, events=("news",))
            there = await on_b.connect("/chat", fan, events=("news",))
            # The Redis listener subscribes in the background: publish until it is listening.
            for _ in range(25):
                await runtime(node_a).emitter.to_user(Namespace.CHAT, fan.id, "news", {"x": 1})
                with contextlib.suppress(TimeoutError):
                    await there.wait_for("news", timeout=0.2)
                    break
            assert (await there.wait_for("news"))[0] == {"x": 1}
            assert (await here.wait_for("news"))[0] == {"x": 1}
        finally:
            await on_a.close_all()
            await on_b.close_all()
    finally:
        await node_a.close()


async def test_a_disconnected_socket_leaves_every_room_and_its_other_devices_still_hear(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = runtime(server)
    manager = server.app[SIO].manager
    fan = await api.register()
    phone = await sockets.connect("/chat", fan, events=("news",))
    laptop = await sockets.connect("/chat", fan, events=("news",))
    phone_sid = phone.client.get_sid("/chat")
    await rt.emitter.join(Namespace.CHAT, phone_sid, ROOM)
    session = session_room(claims_of(fan)["sid"])  # the login session's room
    assert sorted(manager.get_rooms(phone_sid, "/chat")) == sorted(
        [phone_sid, user_room(fan.id), session, ROOM]
    )

    await phone.disconnect()
    for _ in range(50):
        if not manager.is_connected(phone_sid, "/chat"):
            break
        await asyncio.sleep(0.05)

    rooms = manager.rooms["/chat"]
    assert ROOM not in rooms and phone_sid not in rooms
    assert all(phone_sid not in members for members in rooms.values())
    assert manager.get_rooms(phone_sid, "/chat") == []
    await rt.emitter.to_user(Namespace.CHAT, fan.id, "news", {"still": "here"})
    assert await laptop.wait_for("news") == [{"still": "here"}]


async def test_with_the_fast_path_off_broadcasts_take_the_librarys_path(settings: Settings) -> None:
    server = TestServer(
        create_app(settings.model_copy(update={"fast_fanout": False})), host="127.0.0.1"
    )
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(base_url, session).register()
        opened = Sockets(base_url)
        try:
            conn = await opened.connect("/chat", fan, events=("news",))
            before = FanoutMixin.fast_writes
            await runtime(server).emitter.to_user(Namespace.CHAT, fan.id, "news", {"slow": 1})
            assert await conn.wait_for("news") == [{"slow": 1}]
            assert FanoutMixin.fast_writes == before
        finally:
            await opened.close_all()
    finally:
        await server.close()
