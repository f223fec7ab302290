"""A platform backend's webhook receiver on a real port, verifying every signature with the
rule documented in docs/webhooks.md (its Python example, extracted and run as is)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.nodes import eventually

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_example(language: str) -> str:
    """The first fenced `language` block of docs/webhooks.md."""
    match = re.search(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"no {language} example in {DOCS}"
    return match.group(1)


def documented_verify() -> Callable[[str, bytes, str], bool]:
    """The documented Python `verify(secret, raw_body, header)`."""
    scope: dict[str, Any] = {}
    exec(compile(documented_example("python"), str(DOCS), "exec"), scope)
    verify: Callable[[str, bytes, str], bool] = scope["verify"]
    return verify


@dataclass
class Received:
    """One POST as the receiver got it."""

    event_id: str
    body: bytes
    event: dict[str, Any]
    signed: bool
    status: int


@dataclass
class Receiver:
    """Answers webhook POSTs: fails the first `fail_times` attempts of each event, then 200."""

    url: str = ""
    secret: str = ""
    fail_times: int = 0
    fail_status: int = 500
    hold_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_at_once: int = 0
    verify: Callable[[str, bytes, str], bool] = field(default_factory=documented_verify)

    async def handle(self, request: web.Request) -> web.Response:
        """Record, verify, maybe hold, answer."""
        raw = await request.read()
        event_id = request.headers.get("Backchannel-Event-Id", "")
        self.in_flight[event_id] += 1
        self.most_at_once = max(self.most_at_once, self.in_flight[event_id])
        try:
            self.attempts[event_id] += 1
            status = self.fail_status if self.attempts[event_id] <= self.fail_times else 200
            header = request.headers.get("Backchannel-Signature", "")
            self.headers.append(header)
            signed = self.verify(self.secret, raw, header)
            self.received.append(Received(event_id, raw, json.loads(raw), signed, status))
            if self.hold_seconds:
                await asyncio.sleep(self.hold_seconds)  # the backend doing its work
            return web.Response(status=status)
        finally:
            self.in_flight[event_id] -= 1

    def delivered(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events answered 2xx, in arrival order (of one type if given)."""
        return [
            r.event
            for r in self.received
            if r.status == 200 and (event_type is None or r.event["type"] == event_type)
        ]

    async def wait_delivered(
        self, event_type: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` events of this type were answered 2xx."""
        await eventually(
            lambda: len(self.delivered(event_type)) >= count,
            timeout=timeout,
            what=f"{count} {event_type} delivered",
        )
        return self.delivered(event_type)


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hooks"))
    try:
        yield receiver
    finally:
        await server.close()
