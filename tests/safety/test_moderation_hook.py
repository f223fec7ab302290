"""The pre-send moderation hook: allow, reject, replace; late or down, the configured policy
decides; a send never waits much past the deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from backchannel.domain.signatures import SIGNATURE_HEADER, verify_signature
from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm
from tests.processes import free_port

SECRET = "hook-secret-for-tests"
DEADLINE_MS = 300


@dataclass
class FakeModeration:
    """A moderation service: answers with `answer`, after `delay` seconds."""

    url: str = ""
    answer: dict[str, Any] = field(default_factory=lambda: {"action": "allow"})
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)


@pytest.fixture
async def moderation() -> AsyncIterator[FakeModeration]:
    """The fake service on a free local port."""
    fake = FakeModeration()

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        fake.signed.append(verify_signature(SECRET, raw, request.headers.get(SIGNATURE_HEADER, "")))
        fake.calls.append(json.loads(raw))
        if fake.delay:
            await asyncio.sleep(fake.delay)
        return web.json_response(fake.answer)

    app = web.Application()
    app.router.add_post("/moderate", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/moderate"))
    yield fake
    await server.close()


def hooked(settings: Settings, url: str, failure: str = "allow") -> dict[str, Any]:
    """Overrides that turn the hook on."""
    return {
        "moderation_hook_url": url,
        "moderation_hook_secret": SecretStr(SECRET),
        "moderation_hook_timeout_ms": DEADLINE_MS,
        "moderation_hook_failure": failure,
    }


async def test_the_hook_allows_rejects_and_replaces(
    settings: Settings, moderation: FakeModeration
) -> None:
    async with node(settings, **hooked(settings, moderation.url)) as at:
        alice, bob = await at.api.register(), await at.api.register()
        dm = await open_dm(at.sockets, alice, bob)
        chat = await at.sockets.connect("/chat", alice)

        ack = await chat.call(
            "message:send", {"conversation_id": dm, "client_id": "1", "body": "hi"}
        )
        assert ack["ok"] and ack["data"]["body"] == "hi"
        assert moderation.calls[-1] == {
            "sender_id": alice.id,
            "conversation_id": dm,
            "body": "hi",
            "media": [],
            "price_cents": None,
        }
        assert moderation.signed == [True]

        moderation.answer = {"action": "reject", "reason": "spam_detected"}
        ack = await chat.call(
            "message:send", {"conversation_id": dm, "client_id": "2", "body": "buy"}
        )
        assert ack["error"]["code"] == "forbidden"
        assert ack["error"]["details"] == {"reason": "spam_detected"}

        moderation.answer = {"action": "replace", "body": "[removed by moderation]"}
        ack = await chat.call(
            "message:send", {"conversation_id": dm, "client_id": "3", "body": "x"}
        )
        assert ack["data"]["body"] == "[removed by moderation]" and ack["data"]["seq"] == 2
        sync = await chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
        assert [m["body"] for m in sync["data"]["items"]] == ["hi", "[removed by moderation]"]

        async with at.api.session.get(f"{at.api.base_url}/metrics") as response:
            text = await response.text()
        assert 'backchannel_moderation_hook_seconds_count{outcome="replace"} 1.0' in text


@pytest.mark.parametrize("failure", ["allow", "reject"])
async def test_a_late_hook_follows_the_failure_policy_within_the_deadline(
    settings: Settings, moderation: FakeModeration, failure: str
) -> None:
    moderation.delay = 3.0
    async with node(settings, **hooked(settings, moderation.url, failure)) as at:
        alice, bob = await at.api.register(), await at.api.register()
        dm = await open_dm(at.sockets, alice, bob)
        chat = await at.sockets.connect("/chat", alice)
        started = time.monotonic()
        ack = await chat.call(
            "message:send", {"conversation_id": dm, "client_id": "1", "body": "hi"}
        )
        took = time.monotonic() - started
        assert took < DEADLINE_MS / 1000 + 0.7, took
        if failure == "allow":
            assert ack["ok"] and ack["data"]["seq"] == 1
        else:
            assert ack["error"]["code"] == "unavailable"
            assert ack["error"]["details"] == {"reason": "moderation_unavailable"}
            sync = await chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
            assert sync["data"]["items"] == []  # nothing was stored


@pytest.mark.parametrize("failure", ["allow", "reject"])
async def test_a_hook_that_is_down_follows_the_failure_policy(
    settings: Settings, failure: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}/moderate"  # nothing listens there
    async with node(settings, **hooked(settings, down, failure)) as at:
        alice, bob = await at.api.register(), await at.api.register()
        dm = await open_dm(at.sockets, alice, bob)
        chat = await at.sockets.connect("/chat", alice)
        ack = await chat.call(
            "message:send", {"conversation_id": dm, "client_id": "1", "body": "hi"}
        )
        if failure == "allow":
            assert ack["ok"]
        else:
            assert ack["error"]["code"] == "unavailable"
