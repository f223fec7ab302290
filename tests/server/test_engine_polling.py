"""Long-polling as the handshake advertises it: whole bodies, any number of packets, 413 over."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.engine_polling import open_packet_interval_ms
from backchannel.server.settings import Settings
from tests.support import Api, User


class RawPolling:
    """An Engine.IO long-polling session spoken by hand, to send exactly the payloads we mean."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.url = f"{base_url}/socket.io/"
        self.session = session
        self.sid = ""
        self.handshake: dict[str, Any] = {}
        self.received: list[str] = []

    async def open(self) -> None:
        """The handshake: GET without a sid, answered with the OPEN packet."""
        async with self.session.get(self.url, params={"EIO": "4", "transport": "polling"}) as r:
            assert r.status == 200
            body = await r.text()
        assert body.startswith("0")
        self.handshake = json.loads(body[1:])
        self.sid = self.handshake["sid"]

    def _params(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    async def post(self, packets: list[str] | bytes) -> int:
        """POST a payload (packets joined with the record separator, or raw bytes)."""
        body = packets if isinstance(packets, bytes) else "\x1e".join(packets).encode()
        async with self.session.post(self.url, params=self._params(), data=body) as r:
            await r.read()
            return r.status

    async def get(self, timeout: float = 10.0) -> tuple[int, list[str]]:
        """One poll (bounded): its status and the packets it carried."""
        async with self.session.get(
            self.url, params=self._params(), timeout=aiohttp.ClientTimeout(total=timeout)
        ) as r:
            text = await r.text()
            packets = text.split("\x1e") if r.status == 200 and text else []
            self.received.extend(packets)
            return r.status, packets

    async def connect(self, namespace: str, user: User) -> None:
        """Connect a Socket.IO namespace with the user's token and wait for its CONNECT."""
        assert await self.post([f"40{namespace},{json.dumps({'token': user.access_token})}"]) == 200
        await self.until(lambda: any(p.startswith(f"40{namespace},") for p in self.received))

    async def until(self, condition: Any, timeout: float = 10.0) -> None:
        """Poll until `condition()` holds for what has arrived (bounded)."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            assert left > 0, f"not met; received {[p[:80] for p in self.received[-5:]]}"
            try:
                status, _ = await self.get(timeout=left)
            except TimeoutError:
                continue
            assert status == 200, status

    def acks(self, namespace: str) -> dict[int, Any]:
        """The ACK packets received for `namespace`, by ack id."""
        head = f"43{namespace},"
        found: dict[int, Any] = {}
        for pkt in self.received:
            if pkt.startswith(head):
                rest = pkt[len(head) :]
                digits = len(rest) - len(rest.lstrip("0123456789"))
                found[int(rest[:digits])] = json.loads(rest[digits:])[0]
        return found


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_post_carrying_thirty_events_gets_thirty_acks(
    api: Api, base_url: str, http: aiohttp.ClientSession
) -> None:
    fan = await api.register()
    polling = RawPolling(base_url, http)
    await polling.open()
    await polling.connect("/chat", fan)
    events = [f'42/chat,{n}["no:such:event",{{}}]' for n in range(30)]
    assert await polling.post(events) == 200
    await polling.until(lambda: len(polling.acks("/chat")) == 30)
    assert sorted(polling.acks("/chat")) == list(range(30))
    assert all(ack["error"]["code"] == "invalid" for ack in polling.acks("/chat").values())


async def test_a_body_near_max_payload_is_read_whole_and_acked(
    api: Api, base_url: str, http: aiohttp.ClientSession
) -> None:
    fan = await api.register()
    polling = RawPolling(base_url, http)
    await polling.open()
    assert polling.handshake["maxPayload"] == 1_000_000
    await polling.connect("/chat", fan)
    padding = "x" * 900_000
    assert await polling.post([f'42/chat,7["no:such:event",{{"pad":"{padding}"}}]']) == 200
    await polling.until(lambda: 7 in polling.acks("/chat"))
    assert polling.acks("/chat")[7]["error"]["code"] == "invalid"


async def test_a_body_over_max_payload_gets_413_and_closes_the_session(
    api: Api, base_url: str, http: aiohttp.ClientSession
) -> None:
    fan = await api.register()
    polling = RawPolling(base_url, http)
    await polling.open()
    await polling.connect("/chat", fan)
    too_big = f'42/chat,1["no:such:event",{{"pad":"{"x" * 1_000_001}"}}]'
    assert await polling.post([too_big]) == 413
    status, _ = await polling.get()
    assert status == 400  # the session is gone


async def test_an_undecodable_body_gets_400_and_closes_the_session(
    api: Api, base_url: str, http: aiohttp.ClientSession
) -> None:
    fan = await api.register()
    polling = RawPolling(base_url, http)
    await polling.open()
    await polling.connect("/chat", fan)
    assert await polling.post(b"\xff\xfe not utf-8") == 400
    status, _ = await polling.get()
    assert status == 400


@pytest.mark.parametrize(("interval", "advertised"), [(1.5, 1500), (0.25, 250), (25.0, 25000)])
async def test_the_ping_interval_is_advertised_in_exact_milliseconds(
    settings: Settings, interval: float, advertised: int
) -> None:
    server = TestServer(
        create_app(settings.model_copy(update={"ping_interval_seconds": interval})),
        host="127.0.0.1",
    )
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            polling = RawPolling(str(server.make_url("")).rstrip("/"), session)
            await polling.open()
    finally:
        await server.close()
    assert polling.handshake["pingInterval"] == advertised
    assert open_packet_interval_ms(interval, 0) == advertised


async def test_a_fractional_ping_interval_keeps_a_python_client_connected(
    settings: Settings,
) -> None:
    import socketio

    configured = settings.model_copy(
        update={"ping_interval_seconds": 0.3, "ping_timeout_seconds": 0.3}
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    client = socketio.AsyncClient(reconnection=False)
    disconnects: list[Any] = []
    client.on("disconnect", lambda *reason: disconnects.append(reason), namespace="/chat")
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(url, session).register()
        await client.connect(
            url, namespaces=["/chat"], auth={"token": fan.access_token}, transports=["polling"]
        )
        assert client.eio.ping_interval == pytest.approx(0.3)
        await asyncio.sleep(1.5)  # five ping intervals: the pings must keep coming
        assert client.connected and not disconnects
    finally:
        await client.disconnect()
        await server.close()
