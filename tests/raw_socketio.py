"""A Socket.IO client that sends whatever text it is given: for packets no library would send."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ACK_TIMEOUT = 5.0


@dataclass
class RawSocketIO:
    """One Engine.IO websocket speaking Socket.IO packets as raw text (pongs answered)."""

    ws: aiohttp.ClientWebSocketResponse
    packets: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, base_url: str) -> RawSocketIO:
        """The Engine.IO handshake only: no namespace connected yet."""
        ws = await session.ws_connect(f"{base_url}/socket.io/?EIO=4&transport=websocket")
        opening = await asyncio.wait_for(ws.receive_str(), ACK_TIMEOUT)
        assert opening.startswith("0{"), opening
        raw = cls(ws)
        raw._reader = asyncio.create_task(raw._read())
        return raw

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, base_url: str, namespace: str, token: str
    ) -> RawSocketIO:
        """Open and connect `namespace` with `token`."""
        raw = await cls.open(session, base_url)
        reply = await raw.connect_namespace(namespace, token)
        assert reply.startswith(f"0{namespace},"), reply
        return raw

    async def connect_namespace(self, namespace: str, token: str) -> str:
        """Send a CONNECT for `namespace`; the server's CONNECT or CONNECT_ERROR reply."""
        before = len(self.packets)
        await self.send(f"0{namespace},{json.dumps({'token': token})}")
        return await self.next(
            lambda p: p.startswith((f"0{namespace},", f"4{namespace},")), after=before
        )

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                if msg.data == "2":
                    await self.ws.send_str("3")
                    continue
                if msg.data.startswith("4"):
                    async with self._arrived:
                        self.packets.append(msg.data[1:])
                        self._arrived.notify_all()
        finally:
            self.closed.set()

    async def send(self, packet: str) -> None:
        """Send one Socket.IO packet (the Engine.IO MESSAGE prefix is added)."""
        await self.ws.send_str("4" + packet)

    async def next(self, match: Any, *, after: int = 0, timeout: float = ACK_TIMEOUT) -> str:
        """The first packet from index `after` on that satisfies `match`."""

        def found() -> str | None:
            return next((p for p in self.packets[after:] if match(p)), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result

    async def emit_raw(self, namespace: str, body: str, *, timeout: float = ACK_TIMEOUT) -> Any:
        """Send `2<namespace>,<id><body>` (an EVENT with an ack id); the data of its ACK."""
        ack_id = next(self._ids)
        prefix = f"{namespace}," if namespace != "/" else ""
        before = len(self.packets)
        await self.send(f"2{prefix}{ack_id}{body}")
        head = f"3{prefix}{ack_id}"
        reply = await self.next(lambda p: p.startswith(head + "["), after=before, timeout=timeout)
        data = json.loads(reply[len(head) :])
        assert len(data) == 1, reply
        return data[0]

    async def call(self, namespace: str, event: Any, *args: Any) -> Any:
        """An event named `event` (any JSON value) with an ack id; its ack."""
        return await self.emit_raw(namespace, json.dumps([event, *args]))

    async def close(self) -> None:
        """Close the websocket and stop reading."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
