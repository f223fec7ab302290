"""The local push receivers, started per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.push_receivers import ApnsReceiver, FcmReceiver, WebPushReceiver


@pytest.fixture
async def webpush_receiver() -> AsyncIterator[WebPushReceiver]:
    """A Web Push service on a free port."""
    receiver = WebPushReceiver()
    await receiver.start()
    yield receiver
    await receiver.close()


@pytest.fixture
async def fcm_receiver() -> AsyncIterator[FcmReceiver]:
    """Google's token endpoint and FCM HTTP v1 on a free port."""
    receiver = FcmReceiver()
    await receiver.start()
    yield receiver
    await receiver.close()


@pytest.fixture
async def apns_receiver() -> AsyncIterator[ApnsReceiver]:
    """APNs (HTTP/2) on a free port."""
    receiver = ApnsReceiver()
    await receiver.start()
    yield receiver
    await receiver.close()
