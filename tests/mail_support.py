"""A real SMTP server in the test's event loop (aiosmtpd), and reading codes from its mail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass
class Mailbox:
    """Every message the SMTP server accepted."""

    port: int = 0
    messages: list[Message] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """aiosmtpd's hook: a message was delivered."""
        async with self._arrived:
            self.messages.append(message_from_bytes(envelope.content))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    async def wait_for(self, to: str, count: int = 1, timeout: float = 5.0) -> list[Message]:
        """The first `count` messages to `to`, waiting for them."""

        def mine() -> list[Message]:
            return [m for m in self.messages if m["To"] == to]

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(mine()) >= count), timeout)
        return mine()[:count]

    async def code_for(self, to: str, nth: int = 1) -> str:
        """The 6-digit code of the `nth` message to `to`."""
        message = (await self.wait_for(to, nth))[nth - 1]
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found = re.search(r"\b(\d{6})\b", payload.decode())
        assert found, payload
        return found[1]


@asynccontextmanager
async def smtp_server() -> AsyncIterator[Mailbox]:
    """An SMTP server on a free port of 127.0.0.1."""
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox), "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    try:
        yield mailbox
    finally:
        server.close()
        await server.wait_closed()
