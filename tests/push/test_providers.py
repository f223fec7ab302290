"""Each push provider against its local receiver: the real protocols, every outcome, caching."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from backchannel.persistence import devices
from backchannel.persistence.devices import Device
from backchannel.push.answers import topic
from backchannel.push.fcm import FcmProvider, ServiceAccount
from backchannel.push.messages import Outcome, PushMessage
from backchannel.push.providers import PushProviders
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import Node, node
from tests.push_receivers import (
    ApnsReceiver,
    FcmReceiver,
    Scripted,
    WebPushReceiver,
    configure,
    fcm_error,
)
from tests.support import User

DEVICES = "/api/v1/devices"


def chat_push(**changes: Any) -> PushMessage:
    """What the queue sends for a chat message in conversation 3."""
    message = PushMessage(
        notification_id=41,
        type="message",
        title="Ada",
        body="Are you coming tonight? 🌙",
        data={"conversation_id": 3, "seq": 12},
        collapse_key="conversation:3",
        badge=2,
    )
    return replace(message, **changes)


@asynccontextmanager
async def push_node(
    settings: Settings,
    tmp_path: Path,
    webpush: WebPushReceiver,
    fcm: FcmReceiver | None = None,
    apns: ApnsReceiver | None = None,
    **overrides: Any,
) -> AsyncIterator[Node]:
    """A server whose providers point at the receivers; Web Push checks its VAPID key."""
    async with node(configure(settings, tmp_path, fcm=fcm, apns=apns), **overrides) as running:
        status, key = await running.api.call("GET", "/api/v1/push/webpush-key")
        assert status == 200, key
        webpush.vapid_public_key = key["public_key"]
        yield running


def providers(running: Node) -> PushProviders:
    """The node's providers (what the push queue calls)."""
    return running.server.app[RUNTIME].push


async def register(running: Node, user: User, **device: Any) -> Device:
    """Register a device through the route, then read it back as the queue would."""
    status, body = await running.api.call("POST", DEVICES, json=device, user=user)
    assert status == 201, body
    async with running.server.app[RUNTIME].db.connection() as conn:
        stored = await devices.get_device(conn, body["id"])
    assert stored is not None
    return stored


# --- Web Push -----------------------------------------------------------------------------


async def test_a_browser_decrypts_a_web_push_signed_with_the_servers_vapid_key(
    settings: Settings, tmp_path: Path, webpush_receiver: WebPushReceiver
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver) as running:
        fan = await running.api.register()
        browser = webpush_receiver.subscribe()
        device = await register(running, fan, platform="webpush", subscription=browser.json())
        message = chat_push()

        result = await providers(running).send(device, message)
        again = await providers(running).send(device, replace(message, badge=3))

    assert webpush_receiver.errors == []
    assert result.outcome is Outcome.DELIVERED and result.status == 201
    assert again.outcome is Outcome.DELIVERED
    first, second = webpush_receiver.received
    assert first.payload == {
        "notification_id": 41,
        "type": "message",
        "title": "Ada",
        "body": "Are you coming tonight? 🌙",
        "data": {"conversation_id": 3, "seq": 12},
        "collapse_key": "conversation:3",
        "badge": 2,
    }
    assert second.payload["badge"] == 3
    assert first.claims["aud"] == webpush_receiver.origin
    assert first.claims["sub"] == settings.vapid_subject
    assert time.time() < first.claims["exp"] <= time.time() + 24 * 3600
    assert first.headers["TTL"] == str(settings.webpush_ttl_seconds)
    assert first.headers["Urgency"] == "high"
    assert first.headers["Topic"] == topic("conversation:3") and len(first.headers["Topic"]) <= 32
    # The VAPID token is signed once per origin and reused.
    assert second.jwt == first.jwt


async def test_web_push_answers_map_to_outcomes(
    settings: Settings, tmp_path: Path, webpush_receiver: WebPushReceiver
) -> None:
    cases = [
        (Scripted(410, "gone"), Outcome.GONE, None),
        (Scripted(404, "no such subscription"), Outcome.GONE, None),
        (Scripted(429, "slow down", {"Retry-After": "7"}), Outcome.RETRY, 7.0),
        (Scripted(503, "busy", {"Retry-After": "120"}), Outcome.RETRY, 120.0),
        (Scripted(500, "oops"), Outcome.RETRY, None),
        (Scripted(413, "too large"), Outcome.FAILED, None),
        (Scripted(400, "bad"), Outcome.FAILED, None),
    ]
    async with push_node(settings, tmp_path, webpush_receiver) as running:
        fan = await running.api.register()
        for scripted, outcome, retry_after in cases:
            browser = webpush_receiver.subscribe()
            device = await register(running, fan, platform="webpush", subscription=browser.json())
            webpush_receiver.answer(browser, scripted)
            result = await providers(running).send(device, chat_push())
            assert (result.outcome, result.status, result.retry_after) == (
                outcome,
                scripted.status,
                retry_after,
            ), result
            assert result.detail == scripted.body
    assert webpush_receiver.errors == []


async def test_an_unreachable_push_service_is_retried(
    settings: Settings, tmp_path: Path, webpush_receiver: WebPushReceiver
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver) as running:
        fan = await running.api.register()
        browser = webpush_receiver.subscribe()
        device = await register(running, fan, platform="webpush", subscription=browser.json())
        await webpush_receiver.close()
        result = await providers(running).send(device, chat_push())
    assert result.outcome is Outcome.RETRY and result.status is None
    assert result.retry_after is None and result.detail


async def test_a_web_push_too_large_for_one_record_is_refused_before_sending(
    settings: Settings, tmp_path: Path, webpush_receiver: WebPushReceiver
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver) as running:
        fan = await running.api.register()
        browser = webpush_receiver.subscribe()
        device = await register(running, fan, platform="webpush", subscription=browser.json())
        result = await providers(running).send(device, chat_push(data={"text": "x" * 4000}))
    assert result.outcome is Outcome.FAILED and result.status is None
    assert "payload too large" in result.detail
    assert webpush_receiver.received == [] and webpush_receiver.errors == []


# --- FCM ----------------------------------------------------------------------------------


async def test_an_fcm_device_gets_the_message_with_one_cached_oauth_token(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    fcm_receiver: FcmReceiver,
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver, fcm=fcm_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="fcm", token="fcm-token-1")
        first = await providers(running).send(phone, chat_push())
        second = await providers(running).send(phone, chat_push(body=None, collapse_key=None))

    assert fcm_receiver.errors == []
    assert first.outcome is Outcome.DELIVERED and first.status == 200
    assert first.detail.startswith("{") and "messages/1" in first.detail
    assert second.outcome is Outcome.DELIVERED
    assert fcm_receiver.token_requests == 1
    sent, bare = (received.message for received in fcm_receiver.received)
    assert sent["token"] == "fcm-token-1"
    assert sent["notification"] == {"title": "Ada", "body": "Are you coming tonight? 🌙"}
    assert sent["android"]["collapse_key"] == "conversation:3"
    assert sent["apns"]["headers"]["apns-collapse-id"] == "conversation:3"
    assert sent["apns"]["payload"]["aps"]["badge"] == 2
    assert sent["data"] == {
        "notification_id": "41",
        "type": "message",
        "badge": "2",
        "collapse_key": "conversation:3",
        "data": json.dumps({"conversation_id": 3, "seq": 12}),
    }
    assert bare["notification"] == {"title": "Ada"}
    assert "collapse_key" not in bare["android"] and "collapse_key" not in bare["data"]


async def test_fcm_answers_map_to_outcomes(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    fcm_receiver: FcmReceiver,
) -> None:
    cases = [
        (Scripted(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED")), Outcome.GONE, None),
        (
            Scripted(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.token")),
            Outcome.GONE,
            None,
        ),
        (
            Scripted(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.data")),
            Outcome.FAILED,
            None,
        ),
        (
            Scripted(
                429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "30"}
            ),
            Outcome.RETRY,
            30.0,
        ),
        (Scripted(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE")), Outcome.RETRY, None),
        (Scripted(500, fcm_error(500, "INTERNAL", "INTERNAL")), Outcome.RETRY, None),
        (
            Scripted(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
            Outcome.FAILED,
            None,
        ),
    ]
    async with push_node(settings, tmp_path, webpush_receiver, fcm=fcm_receiver) as running:
        fan = await running.api.register()
        for n, (scripted, outcome, retry_after) in enumerate(cases):
            phone = await register(running, fan, platform="fcm", token=f"fcm-{n}")
            fcm_receiver.answer(phone.token, scripted)
            result = await providers(running).send(phone, chat_push())
            assert (result.outcome, result.status, result.retry_after) == (
                outcome,
                scripted.status,
                retry_after,
            ), result
    assert fcm_receiver.errors == []
    assert fcm_receiver.token_requests == 1


async def test_a_revoked_fcm_token_is_minted_again_once(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    fcm_receiver: FcmReceiver,
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver, fcm=fcm_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="fcm", token="fcm-token-1")
        assert (await providers(running).send(phone, chat_push())).outcome is Outcome.DELIVERED
        fcm_receiver.revoke_tokens()
        fcm_receiver.errors.clear()
        result = await providers(running).send(phone, chat_push())
    assert result.outcome is Outcome.DELIVERED
    assert fcm_receiver.token_requests == 2 and len(fcm_receiver.received) == 2
    assert fcm_receiver.errors == ["send without a valid access token"]


async def test_the_fcm_token_is_replaced_shortly_before_it_expires(
    fcm_receiver: FcmReceiver,
) -> None:
    clock = [1_000_000.0]
    fcm_receiver.expires_in = 3600
    account = ServiceAccount.load(json.dumps(fcm_receiver.service_account()))
    async with aiohttp.ClientSession() as http:
        provider = FcmProvider(
            account, http, base_url=fcm_receiver.base_url, clock=lambda: clock[0]
        )
        phone = _device("fcm", "fcm-token-1")
        # The assertion is signed at the provider's clock: keep it near real time.
        clock[0] = time.time()
        assert (await provider.send(phone, chat_push())).outcome is Outcome.DELIVERED
        clock[0] += 3600 - 301  # still more than the 300 s margin left: reused
        assert (await provider.send(phone, chat_push())).outcome is Outcome.DELIVERED
        assert provider.tokens_minted == 1
        clock[0] += 2  # within the margin: a new one
        fcm_receiver.expires_in = 3600
        assert (await provider.send(phone, chat_push())).outcome is Outcome.DELIVERED
        assert provider.tokens_minted == 2
    assert fcm_receiver.token_requests == 2


async def test_a_refusing_token_endpoint_fails_or_retries_the_send(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    fcm_receiver: FcmReceiver,
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver, fcm=fcm_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="fcm", token="fcm-token-1")
        fcm_receiver.token_answer = Scripted(400, {"error": "invalid_grant"})
        refused = await providers(running).send(phone, chat_push())
        fcm_receiver.token_answer = Scripted(503, "down", {"Retry-After": "5"})
        busy = await providers(running).send(phone, chat_push())
        fcm_receiver.token_answer = None
        fine = await providers(running).send(phone, chat_push())
    assert (refused.outcome, refused.status) == (Outcome.FAILED, 400)
    assert "invalid_grant" in refused.detail
    assert (busy.outcome, busy.status, busy.retry_after) == (Outcome.RETRY, 503, 5.0)
    assert fine.outcome is Outcome.DELIVERED and fcm_receiver.received


# --- APNs ---------------------------------------------------------------------------------


async def test_an_ios_device_gets_a_correctly_signed_apns_push_over_http2(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    token = "a1" * 32
    async with push_node(settings, tmp_path, webpush_receiver, apns=apns_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="apns", token=token)
        first = await providers(running).send(phone, chat_push())
        long_key = "conversation:" + "9" * 80
        second = await providers(running).send(phone, chat_push(collapse_key=long_key))

    assert apns_receiver.errors == []
    assert first.outcome is Outcome.DELIVERED and first.status == 200
    assert len(first.detail) == 32  # the apns-id
    assert second.outcome is Outcome.DELIVERED
    got, hashed = apns_receiver.received
    assert got.device_token == token
    assert got.headers["apns-topic"] == apns_receiver.topic
    assert got.headers["apns-push-type"] == "alert"
    assert got.headers["apns-collapse-id"] == "conversation:3"
    assert got.headers["apns-priority"] == "10"
    assert got.payload["aps"] == {
        "alert": {"title": "Ada", "body": "Are you coming tonight? 🌙"},
        "badge": 2,
    }
    assert got.payload["notification_id"] == 41 and got.payload["type"] == "message"
    assert got.payload["data"] == {"conversation_id": 3, "seq": 12}
    assert len(hashed.headers["apns-collapse-id"].encode()) <= 64
    # One provider token for both pushes (reused for ~40 minutes).
    assert hashed.jwt == got.jwt


async def test_apns_answers_map_to_outcomes(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    cases = [
        (Scripted(410, {"reason": "Unregistered", "timestamp": 1}), Outcome.GONE, None),
        (Scripted(400, {"reason": "BadDeviceToken"}), Outcome.GONE, None),
        (Scripted(400, {"reason": "Unregistered"}), Outcome.GONE, None),
        (Scripted(400, {"reason": "DeviceTokenNotForTopic"}), Outcome.FAILED, None),
        (Scripted(429, {"reason": "TooManyRequests"}, {"retry-after": "60"}), Outcome.RETRY, 60.0),
        (Scripted(500, {"reason": "InternalServerError"}), Outcome.RETRY, None),
        (Scripted(503, {"reason": "ServiceUnavailable"}), Outcome.RETRY, None),
        (Scripted(403, {"reason": "InvalidProviderToken"}), Outcome.FAILED, None),
    ]
    async with push_node(settings, tmp_path, webpush_receiver, apns=apns_receiver) as running:
        fan = await running.api.register()
        for n, (scripted, outcome, retry_after) in enumerate(cases):
            phone = await register(running, fan, platform="apns", token=f"{n:064x}")
            apns_receiver.answer(phone.token, scripted)
            result = await providers(running).send(phone, chat_push())
            assert (result.outcome, result.status, result.retry_after) == (
                outcome,
                scripted.status,
                retry_after,
            ), result
            assert result.detail == scripted.body["reason"]
    assert apns_receiver.errors == []


async def test_an_expired_provider_token_is_signed_again_once(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver, apns=apns_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="apns", token="b2" * 32)
        assert (await providers(running).send(phone, chat_push())).outcome is Outcome.DELIVERED
        apns_receiver.expired_tokens.add(apns_receiver.received[0].jwt)
        result = await providers(running).send(phone, chat_push())
    assert result.outcome is Outcome.DELIVERED
    first, second = apns_receiver.received
    assert second.jwt != first.jwt
    assert apns_receiver.errors == []


async def test_an_unreachable_apns_is_retried(
    settings: Settings,
    tmp_path: Path,
    webpush_receiver: WebPushReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver, apns=apns_receiver) as running:
        fan = await running.api.register()
        phone = await register(running, fan, platform="apns", token="c3" * 32)
        await apns_receiver.close()
        result = await providers(running).send(phone, chat_push())
    assert result.outcome is Outcome.RETRY and result.status is None


# --- all of them ----------------------------------------------------------------------------


async def test_an_unconfigured_platform_fails_and_every_send_is_a_metric(
    settings: Settings, tmp_path: Path, webpush_receiver: WebPushReceiver
) -> None:
    async with push_node(settings, tmp_path, webpush_receiver) as running:
        fan = await running.api.register()
        browser = webpush_receiver.subscribe()
        web = await register(running, fan, platform="webpush", subscription=browser.json())
        phone = await register(running, fan, platform="fcm", token="fcm-token-1")
        assert providers(running).for_platform("fcm") is None
        assert providers(running).for_platform("apns") is None

        unconfigured = await providers(running).send(phone, chat_push())
        webpush_receiver.answer(browser, Scripted(410, "gone", times=1))
        gone = await providers(running).send(web, chat_push())
        delivered = await providers(running).send(web, chat_push())
        async with running.api.session.get(f"{running.api.base_url}/metrics") as response:
            metrics = await response.text()

    assert (unconfigured.outcome, unconfigured.detail) == (Outcome.FAILED, "not configured")
    assert gone.outcome is Outcome.GONE and delivered.outcome is Outcome.DELIVERED
    for provider, outcome in (("fcm", "failed"), ("webpush", "gone"), ("webpush", "delivered")):
        line = f'backchannel_push_deliveries_total{{outcome="{outcome}",provider="{provider}"}} 1.0'
        assert line in metrics
    assert 'backchannel_push_latency_seconds_count{provider="webpush"} 2.0' in metrics


def _device(platform: str, token: str) -> Device:
    from datetime import UTC, datetime

    return Device(
        id=1,
        user_id="u",
        platform=platform,
        token=token,
        p256dh=None,
        auth=None,
        app_id=None,
        locale=None,
        time_zone=None,
        created_at=datetime.now(UTC),
    )
