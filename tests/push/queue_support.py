"""A scripted push provider for the queue's own tests (the real receivers test the protocols)."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp.test_utils import TestServer

from backchannel.persistence.devices import Device
from backchannel.push.messages import Outcome, PushMessage, PushResult
from backchannel.server.keys import RUNTIME

DELIVERED = PushResult(Outcome.DELIVERED, 201, None, "ok")


@dataclass
class ScriptedSender:
    """Records every send; answers from a per-token script, then `DELIVERED`."""

    sent: list[tuple[Device, PushMessage]] = field(default_factory=list)
    script: dict[str, deque[PushResult]] = field(default_factory=lambda: defaultdict(deque))
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """Record the push and answer what the script says for this device."""
        planned = self.script[device.token]
        result = planned.popleft() if planned else DELIVERED
        async with self._arrived:
            self.sent.append((device, message))
            self._arrived.notify_all()
        return result

    def to(self, token: str) -> list[PushMessage]:
        """What was sent to the device with this token."""
        return [message for device, message in self.sent if device.token == token]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[Device, PushMessage]]:
        """Wait until `count` pushes were sent in all."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.sent) >= count), timeout)
        return list(self.sent)

    async def assert_nothing_more(self, count: int, within: float = 0.5) -> None:
        """No push beyond the first `count` is sent within a short window."""
        try:
            await self.wait_for(count + 1, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected pushes: {self.sent[count:]}")


def use_sender(server: TestServer) -> ScriptedSender:
    """Make the running server's push worker send through a scripted provider."""
    worker = server.app[RUNTIME].push_worker
    assert worker is not None
    sender = ScriptedSender()
    worker.sender = sender
    return sender
