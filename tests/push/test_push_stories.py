"""Stories of the push queue against the real protocols: a real server (or two), real sockets,
and the local Web Push / FCM / APNs receivers that decrypt and verify what they get."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from backchannel.domain import api_keys
from backchannel.persistence.database import Database, open_database
from backchannel.push.answers import topic
from backchannel.push.apns import collapse_id
from backchannel.rooms.names import Namespace
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import Node, node
from tests.conftest import TEST_JWT_SECRET
from tests.domain.test_message_notifications import open_with, send
from tests.nodes import eventually
from tests.nodes import node as cluster_node
from tests.processes import ServerProcess, settings_env, start_server
from tests.push_receivers import (
    ApnsReceiver,
    BrowserSubscription,
    FcmReceiver,
    Scripted,
    WebPushReceiver,
    configure,
)
from tests.services import RunServices
from tests.support import Api, User

DEVICES = "/api/v1/devices"
PREFERENCES = "/api/v1/notifications/preferences"
IPHONE = "d4" * 32


@pytest.fixture
def push_settings(
    settings: Settings,
    tmp_path: Path,
    fcm_receiver: FcmReceiver,
    apns_receiver: ApnsReceiver,
) -> Settings:
    """The test settings with FCM and APNs pointed at the local receivers."""
    configured: Settings = configure(settings, tmp_path, fcm=fcm_receiver, apns=apns_receiver)
    return configured


@pytest.fixture
async def push_node(
    push_settings: Settings, webpush_receiver: WebPushReceiver
) -> AsyncIterator[Node]:
    """A node whose pushes go to the receivers (the Web Push one knows the server's VAPID key)."""
    async with node(push_settings) as running:
        _, key = await running.api.call("GET", "/api/v1/push/webpush-key")
        webpush_receiver.vapid_public_key = key["public_key"]
        yield running


async def register(api: Api, user: User, device: dict[str, Any]) -> int:
    status, body = await api.call("POST", DEVICES, json=device, user=user)
    assert status == 201, body
    return int(body["id"])


async def away(n: Node, user: User) -> None:
    """The user had the app open, then closed every socket."""
    chat = await n.sockets.connect("/chat", user)
    bell = await n.sockets.connect("/notifications", user)
    await chat.disconnect()
    await bell.disconnect()
    counts = n.server.app[RUNTIME].socket_counts
    assert counts is not None

    async def gone() -> bool:
        for namespace in (Namespace.CHAT, Namespace.NOTIFICATIONS):
            if await counts.with_open(namespace, [user.id]):
                return False
        return True

    await eventually(gone, what="sockets closed")


async def received(receiver: WebPushReceiver | FcmReceiver | ApnsReceiver, count: int) -> None:
    await eventually(lambda: len(receiver.received) >= count, what=f"{count} pushes received")


async def fan_with_browser_and_iphone(
    n: Node, webpush: WebPushReceiver
) -> tuple[User, BrowserSubscription]:
    fan = await n.api.register(display_name="Fan")
    browser = webpush.subscribe()
    await register(n.api, fan, {"platform": "webpush", "subscription": browser.json()})
    await register(n.api, fan, {"platform": "apns", "token": IPHONE})
    await away(n, fan)
    return fan, browser


def no_protocol_errors(*receivers: WebPushReceiver | FcmReceiver | ApnsReceiver) -> None:
    for receiver in receivers:
        assert receiver.errors == []


async def test_a_fan_who_closed_the_app_gets_a_message_on_the_browser_and_the_iphone(
    push_node: Node, webpush_receiver: WebPushReceiver, apns_receiver: ApnsReceiver
) -> None:
    n = push_node
    ada = await n.api.register(role="creator", display_name="Ada")
    fan, browser = await fan_with_browser_and_iphone(n, webpush_receiver)
    chat = await n.sockets.connect("/chat", ada)
    conversation_id = await open_with(chat, fan)

    message = await send(chat, conversation_id, "New set is up!")

    await received(webpush_receiver, 1)
    await received(apns_receiver, 1)
    no_protocol_errors(webpush_receiver, apns_receiver)
    key = f"conversation:{conversation_id}"
    (web,) = webpush_receiver.received
    assert web.subscription_id == browser.id
    assert web.headers["Topic"] == topic(key)
    assert web.payload["type"] == "message" and web.payload["title"] == "New message from Ada"
    assert web.payload["body"] == "New set is up!" and web.payload["badge"] == 1
    assert web.payload["collapse_key"] == key
    assert web.payload["data"]["message_id"] == message["id"]
    (phone,) = apns_receiver.received
    assert phone.device_token == IPHONE
    assert phone.headers["apns-collapse-id"] == collapse_id(key)
    assert phone.payload["aps"]["badge"] == 1
    assert phone.payload["notification_id"] == web.payload["notification_id"]

    # A second message replaces the unread one: same collapse id, the badge stays 1.
    await send(chat, conversation_id, "Did you see it?")
    await received(webpush_receiver, 2)
    await received(apns_receiver, 2)
    assert webpush_receiver.received[1].headers["Topic"] == topic(key)
    assert webpush_receiver.received[1].payload["badge"] == 1
    assert apns_receiver.received[1].headers["apns-collapse-id"] == collapse_id(key)
    no_protocol_errors(webpush_receiver, apns_receiver)


async def test_an_fcm_device_gets_the_same_push_through_fcm(
    push_node: Node, fcm_receiver: FcmReceiver
) -> None:
    n = push_node
    ada = await n.api.register(role="creator", display_name="Ada")
    fan = await n.api.register()
    await register(n.api, fan, {"platform": "fcm", "token": "android-token-1"})
    await away(n, fan)
    chat = await n.sockets.connect("/chat", ada)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "hello android")

    await received(fcm_receiver, 1)
    no_protocol_errors(fcm_receiver)
    sent = fcm_receiver.received[0].message
    assert sent["token"] == "android-token-1"
    assert sent["notification"] == {"title": "New message from Ada", "body": "hello android"}
    assert sent["android"]["collapse_key"] == f"conversation:{conversation_id}"
    assert sent["data"]["type"] == "message" and sent["data"]["badge"] == "1"


async def test_nothing_is_pushed_while_the_fan_has_a_socket_open_on_another_node(
    push_settings: Settings,
    services: RunServices,
    webpush_receiver: WebPushReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    clustered = push_settings.model_copy(update={"redis_url": services.redis_url})
    async with cluster_node(clustered) as a, cluster_node(clustered) as b:
        _, key = await a.api.call("GET", "/api/v1/push/webpush-key")
        webpush_receiver.vapid_public_key = key["public_key"]
        fan = await a.api.register()
        await register(a.api, fan, {"platform": "apns", "token": IPHONE})
        bell = await b.sockets.connect("/notifications", fan, events=("notification",))
        secret = await _api_key(a.server)

        status, _ = await a.api.call(
            "POST",
            "/api/v1/publish",
            json={"user_ids": [fan.id], "notification": {"type": "promo", "title": "Hi"}},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert status == 202

        await bell.wait_for("notification")
        await eventually(lambda: _queue_empty(a), what="queue handled")
        await bell.disconnect()
        assert apns_receiver.received == []


async def _api_key(server: Any) -> str:
    _, secret = await api_keys.create_key(server.app[RUNTIME].db, "stories")
    return secret


async def _queue_empty(n: Any) -> bool:
    async with n.server.app[RUNTIME].db.connection() as conn:
        return bool(await conn.fetchval("select count(*) = 0 from push_queue"))


async def test_a_paid_messages_push_carries_no_content(
    push_node: Node, webpush_receiver: WebPushReceiver, apns_receiver: ApnsReceiver
) -> None:
    n = push_node
    ada = await n.api.register(role="creator", display_name="Ada")
    fan, _ = await fan_with_browser_and_iphone(n, webpush_receiver)
    chat = await n.sockets.connect("/chat", ada)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "exclusive: the secret recipe", price_cents=900)

    await received(webpush_receiver, 1)
    await received(apns_receiver, 1)
    for payload in (webpush_receiver.received[0].payload, apns_receiver.received[0].payload):
        assert payload["body"] == "Sent a paid message"
        assert "secret recipe" not in repr(payload)
    no_protocol_errors(webpush_receiver, apns_receiver)


async def test_a_gone_browser_subscription_is_removed(
    push_node: Node, webpush_receiver: WebPushReceiver, apns_receiver: ApnsReceiver
) -> None:
    n = push_node
    ada = await n.api.register(role="creator", display_name="Ada")
    fan, browser = await fan_with_browser_and_iphone(n, webpush_receiver)
    webpush_receiver.answer(browser, Scripted(410))
    chat = await n.sockets.connect("/chat", ada)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "still there?")

    await received(apns_receiver, 1)

    async def only_the_iphone_left() -> bool:
        _, listed = await n.api.call("GET", DEVICES, user=fan)
        return [d["platform"] for d in listed["items"]] == ["apns"]

    await eventually(only_the_iphone_left, what="the gone subscription removed")
    assert webpush_receiver.received == []


async def test_quiet_hours_hold_pushes_then_one_summary_goes_out(
    push_node: Node, webpush_receiver: WebPushReceiver, apns_receiver: ApnsReceiver
) -> None:
    n = push_node
    ada = await n.api.register(role="creator", display_name="Ada")
    fan, _ = await fan_with_browser_and_iphone(n, webpush_receiver)
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "time_zone": "UTC",
    }
    status, _ = await n.api.call(
        "PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": quiet}, user=fan
    )
    assert status == 200
    chat = await n.sockets.connect("/chat", ada)
    conversation_id = await open_with(chat, fan)
    secret = await _api_key(n.server)
    await send(chat, conversation_id, "good night")
    status, _ = await n.api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [fan.id], "notification": {"type": "tip.received", "title": "A tip"}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert status == 202

    async def held() -> bool:
        async with n.server.app[RUNTIME].db.connection() as conn:
            return bool(await conn.fetchval("select count(*) = 2 from push_queue where held"))

    await eventually(held, what="both pushes held")
    assert webpush_receiver.received == [] and apns_receiver.received == []

    # Quiet hours end: the fan moves them away from now.
    later = {**quiet, "start": (now + timedelta(hours=2)).strftime("%H:%M")}
    later["end"] = (now + timedelta(hours=3)).strftime("%H:%M")
    await n.api.call("PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": later}, user=fan)

    await received(webpush_receiver, 1)
    await received(apns_receiver, 1)
    for payload in (webpush_receiver.received[0].payload, apns_receiver.received[0].payload):
        assert payload["type"] == "summary"
        assert payload["body"] == "1 new message from Ada and 1 tip"
        assert payload["badge"] == 2
    no_protocol_errors(webpush_receiver, apns_receiver)


async def test_a_digest_of_five_is_one_notification_and_one_push(
    push_node: Node, webpush_receiver: WebPushReceiver
) -> None:
    n = push_node
    fan = await n.api.register()
    browser = webpush_receiver.subscribe()
    await register(n.api, fan, {"platform": "webpush", "subscription": browser.json()})
    secret = await _api_key(n.server)
    for i in range(5):
        status, _ = await n.api.call(
            "POST",
            "/api/v1/publish",
            json={
                "user_ids": [fan.id],
                "notification": {"type": "like", "title": f"{i + 1} likes"},
                "digest": {"key": "likes:post-1", "window_s": 2},
            },
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert status == 202

    _, page = await n.api.call("GET", "/api/v1/notifications", user=fan)
    (digest,) = page["items"]
    assert digest["data"]["count"] == 5 and len(digest["data"]["items"]) == 5

    await received(webpush_receiver, 1)
    (push,) = webpush_receiver.received
    assert push.payload["notification_id"] == int(digest["id"])
    assert push.payload["title"] == "5 likes"
    assert push.payload["data"] == {"digest_key": "likes:post-1", "count": 5}
    await eventually(lambda: _queue_empty(n), what="queue handled")
    assert len(webpush_receiver.received) == 1
    no_protocol_errors(webpush_receiver)


class Gate:
    """A push service whose first push hangs (the sending node dies mid-send); later ones are
    accepted. It records every request and decrypts each as the browser would."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hang_first = True
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self.server = TestServer(app, host="127.0.0.1")
        self.subscription = BrowserSubscription.create("http://placeholder/push/gate")

    async def __aenter__(self) -> Gate:
        await self.server.start_server()
        origin = str(self.server.make_url("")).rstrip("/")
        self.subscription = BrowserSubscription.create(f"{origin}/push/gate")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()
        await self.server.close()

    async def _push(self, request: web.Request) -> web.Response:
        payload = json.loads(self.subscription.decrypt(await request.read()))
        self.requests.append(payload)
        if self.hang_first and len(self.requests) == 1:
            await self._released.wait()  # never answered: the node is killed meanwhile
        return web.Response(status=201)


async def test_a_push_survives_a_node_dying_mid_send_and_two_nodes_never_both_send_one(
    services: RunServices, tmp_path: Path
) -> None:
    env = settings_env(
        database_url=services.database_url,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env.update(
        {
            "BACKCHANNEL_PUSH_QUEUE_LEASE_SECONDS": "5",
            "BACKCHANNEL_PUSH_QUEUE_POLL_SECONDS": "0.5",
            "BACKCHANNEL_PUSH_TIMEOUT_SECONDS": "1.5",
            "BACKCHANNEL_DB_POOL_MAX_SIZE": "4",
        }
    )
    db = await open_database(
        services.database_url, min_size=1, max_size=2, statement_timeout_ms=5000
    )
    _, secret = await api_keys.create_key(db, "restart-story")
    first = start_server(env, tmp_path)
    later: list[ServerProcess] = []
    try:
        async with Gate() as gate, aiohttp.ClientSession() as session:
            await first.wait_ready()
            api = Api(first.url, session)
            fan = await api.register()
            await register(
                api, fan, {"platform": "webpush", "subscription": gate.subscription.json()}
            )
            headers = {"Authorization": f"Bearer {secret}"}
            status, body = await api.call(
                "POST",
                "/api/v1/publish",
                json={"user_ids": [fan.id], "notification": {"type": "promo", "title": "Hi"}},
                headers=headers,
            )
            assert status == 202
            await eventually(lambda: len(gate.requests) == 1, what="the first node sending")
            first.kill()  # committed and claimed, never answered: the node is gone

            # Two nodes now; the lease lapses and exactly one of them sends it, once.
            later = [start_server(env, tmp_path), start_server(env, tmp_path)]
            for process in later:
                await process.wait_ready()
            await eventually(lambda: len(gate.requests) >= 2, timeout=15.0, what="the push retaken")
            assert gate.requests[1]["notification_id"] == int(body["id"])

            # Many pushes with both nodes claiming: each goes out exactly once.
            ids = []
            for i in range(10):
                target = Api(later[i % 2].url, session)
                status, sent = await target.call(
                    "POST",
                    "/api/v1/publish",
                    json={
                        "user_ids": [fan.id],
                        "notification": {"type": "promo", "title": f"Hi {i}"},
                    },
                    headers=headers,
                )
                assert status == 202
                ids.append(int(sent["id"]))
            await eventually(lambda: len(gate.requests) >= 12, timeout=15.0, what="all sent")
            await eventually(lambda: _queue_empty_in(db), timeout=10.0, what="queue empty")
            pushed = [p["notification_id"] for p in gate.requests[2:]]
            assert sorted(pushed) == sorted(ids), pushed
            assert len(gate.requests) == 12
    finally:
        for process in (first, *later):
            process.kill()
        await db.close()


async def _queue_empty_in(db: Database) -> bool:
    async with db.connection() as conn:
        return bool(await conn.fetchval("select count(*) = 0 from push_queue"))
