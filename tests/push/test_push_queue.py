"""The push queue against a real server, Postgres and Redis, with a scripted provider.

(The protocols themselves are tested with the real receivers in `test_push_stories.py`.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from backchannel.push.messages import Outcome, PushResult
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.domain.test_message_notifications import open_with, send
from tests.nodes import eventually
from tests.push.queue_support import use_sender
from tests.server.test_metrics import scrape, value
from tests.services import RunServices
from tests.support import Api, Sockets, User

DEVICES = "/api/v1/devices"
PREFERENCES = "/api/v1/notifications/preferences"


async def add_device(api: Api, user: User, platform: str, token: str) -> int:
    status, body = await api.call(
        "POST", DEVICES, json={"platform": platform, "token": token}, user=user
    )
    assert status == 201, body
    return int(body["id"])


async def queue_rows(services: RunServices) -> int:
    conn = await asyncpg.connect(services.database_url)
    try:
        count: int = await conn.fetchval("select count(*) from push_queue")
        return count
    finally:
        await conn.close()


async def test_a_message_to_a_fan_away_from_the_app_is_pushed_to_each_device(
    server: TestServer, api: Api, sockets: Sockets, services: RunServices
) -> None:
    sender = use_sender(server)
    creator = await api.register(role="creator", display_name="Ada")
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    await add_device(api, fan, "fcm", "tablet-token")
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "hello there")

    pushed = await sender.wait_for(2)
    assert {device.token for device, _ in pushed} == {"phone-token", "tablet-token"}
    for _, message in pushed:
        assert message.type == "message" and message.title == "New message from Ada"
        assert message.body == "hello there"
        assert message.collapse_key == f"conversation:{conversation_id}"
        assert message.badge == 1 and message.notification_id is not None
    await sender.assert_nothing_more(2)
    assert await queue_rows(services) == 0


async def test_a_paid_messages_push_carries_only_its_notification_text(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    sender = use_sender(server)
    creator = await api.register(role="creator", display_name="Ada")
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    chat = await sockets.connect("/chat", creator)
    conversation_id = await open_with(chat, fan)

    await send(chat, conversation_id, "the secret content", price_cents=500)

    ((_, message),) = await sender.wait_for(1)
    assert message.body == "Sent a paid message"
    assert "the secret content" not in repr(message.payload())


async def test_nothing_is_pushed_while_a_socket_is_open(
    server: TestServer, api: Api, sockets: Sockets, services: RunServices
) -> None:
    sender = use_sender(server)
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    await sockets.connect("/notifications", fan)
    key = await publisher_key(server)

    status, _ = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [fan.id], "notification": {"type": "promo", "title": "Hi"}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert status == 202
    await eventually(lambda: _empty(services), what="queue emptied")
    await sender.assert_nothing_more(0)


async def _empty(services: RunServices) -> bool:
    return await queue_rows(services) == 0


async def publisher_key(server: TestServer) -> str:
    from backchannel.domain import api_keys

    rt = server.app[RUNTIME]
    _, secret = await api_keys.create_key(rt.db, "push-tests")
    return secret


async def publish(api: Api, key: str, user: User, type: str = "promo", **extra: object) -> str:
    status, body = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [user.id], "notification": {"type": type, "title": "Hi"}} | extra,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert status == 202, body
    return str(body["id"])


async def test_users_without_devices_queue_nothing(
    server: TestServer, api: Api, services: RunServices
) -> None:
    use_sender(server)
    fan = await api.register()
    key = await publisher_key(server)
    conn = await asyncpg.connect(services.database_url)
    try:
        await publish(api, key, fan)
        assert await conn.fetchval("select count(*) from notification_receipts") == 1
        assert await conn.fetchval("select count(*) from push_queue") == 0
    finally:
        await conn.close()


async def test_muted_push_types_are_not_pushed(
    server: TestServer, api: Api, services: RunServices
) -> None:
    sender = use_sender(server)
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    status, _ = await api.call(
        "PUT", PREFERENCES, json={"muted_types": [], "push_muted_types": ["promo"]}, user=fan
    )
    assert status == 200
    key = await publisher_key(server)

    await publish(api, key, fan, "promo")
    await publish(api, key, fan, "news")

    ((_, message),) = await sender.wait_for(1)
    assert message.type == "news"
    await eventually(lambda: _empty(services), what="queue emptied")
    await sender.assert_nothing_more(1)


async def test_a_gone_device_is_removed_and_others_still_get_the_push(
    server: TestServer, api: Api
) -> None:
    sender = use_sender(server)
    sender.script["old-phone"].append(PushResult(Outcome.GONE, 410, None, "Unregistered"))
    fan = await api.register()
    await add_device(api, fan, "apns", "old-phone")
    await add_device(api, fan, "fcm", "tablet")
    key = await publisher_key(server)

    await publish(api, key, fan)

    await sender.wait_for(2)

    async def only_the_tablet_left() -> bool:
        _, listed = await api.call("GET", DEVICES, user=fan)
        return [d["platform"] for d in listed["items"]] == ["fcm"]

    await eventually(only_the_tablet_left, what="gone device removed")


async def test_a_retryable_answer_is_retried_for_that_device_only(
    settings: Settings, services: RunServices
) -> None:
    async with node(settings, push_retry_base_seconds=0.05, push_max_attempts=3) as n:
        sender = use_sender(n.server)
        sender.script["busy"].append(PushResult(Outcome.RETRY, 503, 0.1, "Unavailable"))
        fan = await n.api.register()
        await add_device(n.api, fan, "apns", "busy")
        await add_device(n.api, fan, "fcm", "fine")
        key = await publisher_key(n.server)

        await publish(n.api, key, fan)

        pushed = await sender.wait_for(3)
        assert [d.token for d, _ in pushed].count("busy") == 2
        assert [d.token for d, _ in pushed].count("fine") == 1
        await eventually(lambda: _empty(services), what="queue emptied")
        await sender.assert_nothing_more(3)


async def test_retries_give_up_after_the_last_attempt(
    settings: Settings, services: RunServices
) -> None:
    async with node(settings, push_retry_base_seconds=0.02, push_max_attempts=3) as n:
        sender = use_sender(n.server)
        for _ in range(5):
            sender.script["down"].append(PushResult(Outcome.RETRY, 500, None, "Internal"))
        fan = await n.api.register()
        await add_device(n.api, fan, "fcm", "down")
        key = await publisher_key(n.server)

        await publish(n.api, key, fan)

        await sender.wait_for(3)
        await eventually(lambda: _empty(services), what="queue emptied")
        await sender.assert_nothing_more(3)


def quiet_hours_around_now() -> dict[str, str]:
    """Quiet hours from an hour ago to an hour from now, in UTC (crossing midnight or not)."""
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "time_zone": "UTC"}


async def held_rows(services: RunServices) -> int:
    conn = await asyncpg.connect(services.database_url)
    try:
        count: int = await conn.fetchval("select count(*) from push_queue where held")
        return count
    finally:
        await conn.close()


async def test_quiet_hours_hold_pushes_then_send_one_summary_without_what_was_read(
    server: TestServer, api: Api, sockets: Sockets, services: RunServices
) -> None:
    sender = use_sender(server)
    ada = await api.register(role="creator", display_name="Ada")
    bo = await api.register(role="creator", display_name="Bo")
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    quiet = quiet_hours_around_now()
    status, prefs = await api.call(
        "PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": quiet}, user=fan
    )
    assert status == 200 and prefs["quiet_hours"] == quiet
    key = await publisher_key(server)
    ada_chat = await sockets.connect("/chat", ada)
    bo_chat = await sockets.connect("/chat", bo)
    await send(ada_chat, await open_with(ada_chat, fan), "first")
    await send(ada_chat, await open_with(ada_chat, fan), "second (replaces the first)")
    await send(bo_chat, await open_with(bo_chat, fan), "hi from Bo")
    await publish(api, key, fan, "tip.received")
    promo = await publish(api, key, fan, "promo")
    await eventually(lambda: _held(services, 4), what="pushes held")
    status, _ = await api.call(
        "POST", "/api/v1/notifications/read", json={"ids": [promo]}, user=fan
    )
    assert status == 200
    await sender.assert_nothing_more(0)

    # Quiet hours end (here: the fan clears them): one summary of what is still unread.
    status, _ = await api.call("PUT", PREFERENCES, json={"muted_types": []}, user=fan)
    assert status == 200

    ((device, summary),) = await sender.wait_for(1)
    assert device.token == "phone-token"
    assert summary.type == "summary" and summary.notification_id is None
    assert summary.body == "2 new messages from Ada and Bo and 1 tip"
    assert summary.data["count"] == 3 and len(summary.data["notification_ids"]) == 3
    assert summary.badge == 3
    await eventually(lambda: _empty(services), what="queue emptied")
    await sender.assert_nothing_more(1)


async def _held(services: RunServices, count: int) -> bool:
    return await held_rows(services) == count


async def test_the_workers_clock_decides_quiet_hours(
    server: TestServer, api: Api, services: RunServices
) -> None:
    sender = use_sender(server)
    worker = server.app[RUNTIME].push_worker
    assert worker is not None
    fan = await api.register()
    await add_device(api, fan, "fcm", "tablet")
    night = {"start": "22:00", "end": "08:00", "time_zone": "Europe/Berlin"}
    await api.call("PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": night}, user=fan)
    key = await publisher_key(server)
    worker.clock = lambda: datetime(2026, 1, 10, 23, 0, tzinfo=UTC)  # midnight in Berlin

    await publish(api, key, fan, "news")
    await eventually(lambda: _held(services, 1), what="push held")
    await sender.assert_nothing_more(0)

    # Morning in Berlin; the held row is looked at again (as at its due time) and goes out.
    worker.clock = lambda: datetime(2026, 1, 11, 9, 0, tzinfo=UTC)
    await release(services)
    worker.wake()
    ((_, message),) = await sender.wait_for(1)
    assert message.type == "news"  # one held push goes out as itself, not as a summary


async def release(services: RunServices) -> None:
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute("update push_queue set due_at = now()")
    finally:
        await conn.close()


async def test_a_digest_of_five_notifications_in_one_window_is_one_notification_and_one_push(
    server: TestServer, api: Api, services: RunServices
) -> None:
    sender = use_sender(server)
    fan = await api.register()
    other = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    key = await publisher_key(server)
    digest = {"key": "likes", "window_s": 2}

    ids = set()
    for n in range(5):
        status, body = await api.call(
            "POST",
            "/api/v1/publish",
            json={
                "user_ids": [fan.id],
                "notification": {"type": "like", "title": f"Like {n}", "data": {"n": n}},
                "digest": digest,
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        assert status == 202 and body["recipients"] == 1, body
        ids.add(body["id"])
    # Another digest key, or another user, is a digest of its own.
    await publish(api, key, other, "like", digest=digest)

    assert len(ids) == 5  # each publish answers its own id
    _, page = await api.call("GET", "/api/v1/notifications", user=fan)
    (stored,) = page["items"]
    assert page["unread_count"] == 1
    assert stored["title"] == "Like 4" and stored["data"]["count"] == 5
    assert [item["data"]["n"] for item in stored["data"]["items"]] == [0, 1, 2, 3, 4]
    await sender.assert_nothing_more(0, within=1.0)  # nothing before the window ends

    ((_, message),) = await sender.wait_for(1, timeout=6.0)
    assert message.notification_id == int(stored["id"])
    assert message.data == {"digest_key": "likes", "count": 5}
    assert message.collapse_key == "digest:likes" and message.badge == 1
    await sender.assert_nothing_more(1)

    # After the window, the next one opens a new digest.
    await publish(api, key, fan, "like", digest=digest)
    _, page = await api.call("GET", "/api/v1/notifications", user=fan)
    assert [item["data"]["count"] for item in page["items"]] == [5, 1]


async def test_a_repeated_digest_publish_folds_once_and_a_collapse_key_is_refused(
    server: TestServer, api: Api
) -> None:
    fan = await api.register()
    key = await publisher_key(server)
    digest = {"key": "likes", "window_s": 60}
    first = await publish(api, key, fan, "like", digest=digest, dedupe_key="like-1")
    again = await publish(api, key, fan, "like", digest=digest, dedupe_key="like-1")
    await publish(api, key, fan, "like", digest=digest, dedupe_key="like-2")
    assert first == again
    _, page = await api.call("GET", "/api/v1/notifications", user=fan)
    assert [item["data"]["count"] for item in page["items"]] == [2]

    for extra in ({"collapse_key": "c"}, {"digest": {"key": "likes", "window_s": 0}}):
        status, body = await api.call(
            "POST",
            "/api/v1/publish",
            json={
                "user_ids": [fan.id],
                "notification": {"type": "like", "title": "Like"},
                "digest": digest,
            }
            | extra,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert status == 400 and body["error"]["details"][0]["field"].startswith("digest"), body


def test_a_lease_shorter_than_a_send_is_refused(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="PUSH_QUEUE_LEASE_SECONDS"):
        Settings.model_validate(
            settings.model_dump() | {"push_queue_lease_seconds": 10, "push_timeout_seconds": 5}
        )


async def test_queue_depth_oldest_age_and_outcomes_are_metrics(
    server: TestServer, api: Api, services: RunServices
) -> None:
    sender = use_sender(server)
    fan = await api.register()
    await add_device(api, fan, "apns", "phone-token")
    key = await publisher_key(server)
    await publish(api, key, fan, "news")
    await sender.wait_for(1)
    await eventually(lambda: _empty(services), what="queue emptied")
    quiet = quiet_hours_around_now()
    await api.call("PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": quiet}, user=fan)
    await publish(api, key, fan, "news")
    await eventually(lambda: _held(services, 1), what="push held")
    # A row nobody has sent for a minute (as if every node were down).
    conn = await asyncpg.connect(services.database_url)
    try:
        notification_id = await conn.fetchval("select max(id) from notifications")
        await conn.execute(
            "insert into push_queue (user_id, notification_id, due_at, claimed_until) "
            "values ($1, $2, now() - interval '60 seconds', now() + interval '1 hour')",
            fan.id,
            notification_id,
        )
    finally:
        await conn.close()

    samples = await scrape(api)

    assert value(samples, "backchannel_push_queue_depth", state="held") == 1
    assert value(samples, "backchannel_push_queue_depth", state="pending") == 1
    assert 59 <= value(samples, "backchannel_push_queue_oldest_age_seconds") < 120
    assert value(samples, "backchannel_push_queue_outcomes_total", outcome="sent") == 1
    assert value(samples, "backchannel_push_queue_outcomes_total", outcome="held") == 1
    assert value(samples, "backchannel_push_queue_outcomes_total", outcome="device_delivered") == 1


async def test_a_growing_digest_is_sent_live_again_with_the_same_id(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    use_sender(server)
    fan = await api.register()
    bell = await sockets.connect(
        "/notifications", fan, events=("notification", "notifications:unread")
    )
    key = await publisher_key(server)
    digest = {"key": "likes", "window_s": 60}

    await publish(api, key, fan, "like", digest=digest)
    await publish(api, key, fan, "like", digest=digest)

    first, second = await bell.wait_for("notification", 2)
    assert first["id"] == second["id"]
    assert (first["data"]["count"], second["data"]["count"]) == (1, 2)
    assert (await bell.wait_for("notifications:unread"))[-1] == {"count": 1}
    await bell.assert_nothing("notifications:unread")


async def test_the_openapi_document_describes_quiet_hours_push_mutes_and_digests(
    api: Api,
) -> None:
    status, document = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    schemas = document["components"]["schemas"]
    preferences = schemas["Preferences"]["properties"]
    assert {"muted_types", "push_muted_types", "quiet_hours"} <= set(preferences)
    assert set(schemas["QuietHours"]["required"]) == {"start", "end", "time_zone"}
    assert "digest" in schemas["PublishRequest"]["properties"]
    assert set(schemas["Digest"]["required"]) == {"key", "window_s"}


async def test_a_stream_entry_with_a_digest_handled_twice_is_folded_once(
    server: TestServer, api: Api, services: RunServices
) -> None:
    from backchannel.domain import api_keys
    from backchannel.server.publish_stream import PublishStreamConsumer
    from backchannel.server.redis_clients import open_redis

    rt = server.app[RUNTIME]
    await api_keys.create_key(rt.db, "events")
    fan = await api.register()
    payload = {
        "api_key_name": "events",
        "user_ids": [fan.id],
        "notification": {"type": "like", "title": "A like"},
        "digest": {"key": "likes", "window_s": 60},
    }
    redis = open_redis(services.redis_url)
    try:
        consumer = PublishStreamConsumer(rt, redis, "test-consumer")
        fields = {b"payload": json.dumps(payload).encode()}
        await consumer.apply("1-0", fields)
        await consumer.apply("1-0", fields)  # reclaimed after a crash: the same entry again
        await consumer.apply("2-0", fields)
    finally:
        await redis.aclose()

    _, page = await api.call("GET", "/api/v1/notifications", user=fan)
    assert [item["data"]["count"] for item in page["items"]] == [2]


async def test_bad_quiet_hours_are_refused_with_the_field_named(api: Api) -> None:
    fan = await api.register()
    for quiet, field in (
        ({"start": "22:00", "end": "08:00", "time_zone": "Mars/Olympus"}, "quiet_hours.time_zone"),
        ({"start": "25:00", "end": "08:00", "time_zone": "UTC"}, "quiet_hours.start"),
        ({"start": "08:00", "end": "08:00", "time_zone": "UTC"}, "quiet_hours"),
    ):
        status, body = await api.call(
            "PUT", PREFERENCES, json={"muted_types": [], "quiet_hours": quiet}, user=fan
        )
        assert status == 400, body
        assert body["error"]["code"] == "invalid"
        assert body["error"]["details"][0]["field"] == field, body
    _, prefs = await api.call("GET", PREFERENCES, user=fan)
    assert prefs["quiet_hours"] is None
