"""Webhook stories run with short retry delays, polls and refreshes (real ones are minutes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import api_keys
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.support import Api
from tests.webhooks.receiver import Receiver, running_receiver

FAST = {
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_delay_seconds": 0.2,
    "webhook_poll_seconds": 0.1,
    "webhook_types_refresh_seconds": 0.1,
}
ENDPOINTS = "/api/v1/webhook-endpoints"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The usual test settings, with webhook timings made fast."""
    return settings.model_copy(update=FAST)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The platform backend's webhook receiver."""
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def key(server: TestServer) -> str:
    """A live server API key named `platform`."""
    _, secret = await api_keys.create_key(server.app[RUNTIME].db, "platform")
    return secret


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header of a server API key."""
    return {"Authorization": f"Bearer {secret}"}


async def subscribe(
    api: Api, key: str, receiver: Receiver, events: list[str], **extra: Any
) -> dict[str, Any]:
    """Register the receiver for `events`; it learns the signing secret from the answer."""
    status, body = await api.call(
        "POST",
        ENDPOINTS,
        json={"url": receiver.url, "events": events, **extra},
        headers=bearer(key),
    )
    assert status == 201, body
    receiver.secret = body["secret"]
    return body
