"""`POST /publish`: other backends notify users with a server API key."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import api_keys
from backchannel.server.keys import RUNTIME
from tests.services import RunServices
from tests.support import Api, Sockets

PUBLISH = "/api/v1/publish"


@pytest.fixture
async def key(server: TestServer) -> str:
    """A live API key named `events`."""
    _, secret = await api_keys.create_key(server.app[RUNTIME].db, "events")
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def body(**extra: object) -> dict[str, object]:
    return {"notification": {"type": "event.reminder", "title": "Live in 10 minutes"}, **extra}


async def test_publish_stores_then_delivers_to_every_recipient(
    api: Api, sockets: Sockets, key: str
) -> None:
    fans = [await api.register() for _ in range(3)]
    online = await sockets.connect("/notifications", fans[0], events=("notification",))

    status, result = await api.call(
        "POST",
        PUBLISH,
        json=body(
            user_ids=[f.id for f in fans],
            notification={
                "type": "event.reminder",
                "title": "Live",
                "body": "in 10",
                "data": {"event": 7},
            },
        ),
        headers=bearer(key),
    )
    assert status == 202, result
    assert result == {"id": result["id"], "recipients": 3}
    (live,) = await online.wait_for("notification")
    assert live["id"] == result["id"] and live["data"] == {"event": 7}

    status, page = await api.call("GET", "/api/v1/notifications", user=fans[2])
    assert status == 200
    assert [i["id"] for i in page["items"]] == [result["id"]]
    assert page["unread_count"] == 1 and page["next_cursor"] is None


async def test_publish_without_a_key_or_with_a_user_token_is_unauthorized(
    api: Api, key: str
) -> None:
    fan = await api.register()
    status, answer = await api.call("POST", PUBLISH, json=body(user_ids=[fan.id]))
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    status, answer = await api.call("POST", PUBLISH, json=body(user_ids=[fan.id]), user=fan)
    assert status == 401
    status, _ = await api.call(
        "POST", PUBLISH, json=body(user_ids=[fan.id]), headers=bearer(key + "x")
    )
    assert status == 401


async def test_a_revoked_key_stops_working_at_once(server: TestServer, api: Api, key: str) -> None:
    fan = await api.register()
    status, _ = await api.call("POST", PUBLISH, json=body(user_ids=[fan.id]), headers=bearer(key))
    assert status == 202
    await api_keys.revoke_key(server.app[RUNTIME].db, "events")
    status, answer = await api.call(
        "POST", PUBLISH, json=body(user_ids=[fan.id]), headers=bearer(key)
    )
    assert status == 401 and answer["error"]["code"] == "unauthorized"


async def test_a_malformed_body_is_400_with_field_details(api: Api, key: str) -> None:
    status, answer = await api.call(
        "POST",
        PUBLISH,
        json={"user_ids": "everyone", "notification": {"type": ""}},
        headers=bearer(key),
    )
    assert status == 400 and answer["error"]["code"] == "invalid"
    fields = {d["field"] for d in answer["error"]["details"]}
    assert {"user_ids", "notification.type", "notification.title"} <= fields

    status, answer = await api.call("POST", PUBLISH, json=body(), headers=bearer(key))
    assert status == 400
    assert {d["field"] for d in answer["error"]["details"]} == {"user_ids", "audience"}

    status, answer = await api.call(
        "POST", PUBLISH, json=body(user_ids=["x"] * 10_001), headers=bearer(key)
    )
    assert status == 400 and answer["error"]["details"][0]["field"] == "user_ids"


async def test_unknown_user_ids_are_skipped_not_an_error(api: Api, key: str) -> None:
    fan = await api.register()
    status, result = await api.call(
        "POST",
        PUBLISH,
        json=body(user_ids=[fan.id, "nobody-1", fan.id, "nobody-2"]),
        headers=bearer(key),
    )
    assert status == 202
    assert result["recipients"] == 1 and result["skipped"] == ["nobody-1", "nobody-2"]


async def test_a_republish_with_the_same_dedupe_key_returns_the_first_result(
    api: Api, sockets: Sockets, key: str
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    request = body(user_ids=[fan.id, "ghost"], dedupe_key="reminder-7")
    first = await api.call("POST", PUBLISH, json=request, headers=bearer(key))
    again = await api.call("POST", PUBLISH, json=request, headers=bearer(key))
    assert first == again
    assert first[0] == 202 and first[1]["skipped"] == ["ghost"]
    await s.wait_for("notification")
    await s.assert_nothing("notification", within=0.3)
    page = (await s.call("notifications:sync", {}))["data"]
    assert len(page["items"]) == 1


async def test_an_audience_publish_reaches_active_subscribers_only(
    api: Api, sockets: Sockets, key: str, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    active, trialing, cancelled, stranger = [await api.register() for _ in range(4)]
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.executemany(
            "insert into subscriptions (fan_id, creator_id, status) values ($1, $2, $3)",
            [
                (active.id, creator.id, "active"),
                (trialing.id, creator.id, "trialing"),
                (cancelled.id, creator.id, "canceled"),
            ],
        )
    finally:
        await conn.close()
    watching = {
        u.id: await sockets.connect("/notifications", u, events=("notification",))
        for u in (active, trialing, cancelled, stranger)
    }

    status, result = await api.call(
        "POST",
        PUBLISH,
        json=body(audience={"creator_id": creator.id, "of": "subscribers"}),
        headers=bearer(key),
    )
    assert status == 202 and result == {"id": result["id"], "recipients": 2}
    for user in (active, trialing):
        assert (await watching[user.id].wait_for("notification"))[0]["id"] == result["id"]
    for user in (cancelled, stranger):
        await watching[user.id].assert_nothing("notification")

    status, answer = await api.call(
        "POST",
        PUBLISH,
        json=body(audience={"creator_id": active.id, "of": "subscribers"}),
        headers=bearer(key),
    )
    assert status == 400 and answer["error"]["details"][0]["field"] == "audience.creator_id"


async def test_muted_types_are_stored_but_not_pushed_live(
    api: Api, sockets: Sockets, key: str
) -> None:
    fan = await api.register()
    status, prefs = await api.call("GET", "/api/v1/notifications/preferences", user=fan)
    assert status == 200 and prefs == {
        "muted_types": [],
        "push_muted_types": [],
        "quiet_hours": None,
    }
    status, prefs = await api.call(
        "PUT",
        "/api/v1/notifications/preferences",
        json={"muted_types": ["event.reminder"]},
        user=fan,
    )
    assert status == 200 and prefs["muted_types"] == ["event.reminder"]
    s = await sockets.connect("/notifications", fan, events=("notification",))

    await api.call("POST", PUBLISH, json=body(user_ids=[fan.id]), headers=bearer(key))
    other = {"type": "tip.received", "title": "A tip"}
    await api.call(
        "POST", PUBLISH, json={"user_ids": [fan.id], "notification": other}, headers=bearer(key)
    )

    (live,) = await s.wait_for("notification")
    assert live["type"] == "tip.received"
    await s.assert_nothing("notification")
    status, page = await api.call("GET", "/api/v1/notifications", user=fan)
    assert [i["type"] for i in page["items"]] == ["event.reminder", "tip.received"]


async def test_marking_read_over_http(api: Api, key: str) -> None:
    fan = await api.register()
    for _ in range(2):
        await api.call("POST", PUBLISH, json=body(user_ids=[fan.id]), headers=bearer(key))
    _, page = await api.call("GET", "/api/v1/notifications?limit=1", user=fan)
    assert len(page["items"]) == 1 and page["next_cursor"] == page["items"][0]["id"]
    _, rest = await api.call("GET", f"/api/v1/notifications?cursor={page['next_cursor']}", user=fan)
    assert len(rest["items"]) == 1

    status, answer = await api.call(
        "POST", "/api/v1/notifications/read", json={"ids": [page["items"][0]["id"]]}, user=fan
    )
    assert status == 200 and answer == {"unread_count": 1}
    status, answer = await api.call(
        "POST", "/api/v1/notifications/read", json={"all": True}, user=fan
    )
    assert answer == {"unread_count": 0}
    status, answer = await api.call("GET", "/api/v1/notifications?cursor=abc", user=fan)
    assert status == 400 and answer["error"]["details"][0]["field"] == "cursor"


async def test_an_audience_member_who_muted_the_type_is_not_pushed(
    api: Api, sockets: Sockets, key: str, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    keen, quiet = await api.register(), await api.register()
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.executemany(
            "insert into subscriptions (fan_id, creator_id, status) values ($1, $2, 'active')",
            [(keen.id, creator.id), (quiet.id, creator.id)],
        )
    finally:
        await conn.close()
    await api.call(
        "PUT",
        "/api/v1/notifications/preferences",
        json={"muted_types": ["event.reminder"]},
        user=quiet,
    )
    keen_socket = await sockets.connect("/notifications", keen, events=("notification",))
    quiet_socket = await sockets.connect("/notifications", quiet, events=("notification",))

    status, result = await api.call(
        "POST",
        PUBLISH,
        json=body(audience={"creator_id": creator.id, "of": "subscribers"}),
        headers=bearer(key),
    )
    assert status == 202 and result["recipients"] == 2
    await keen_socket.wait_for("notification")
    await quiet_socket.assert_nothing("notification")
    _, page = await api.call("GET", "/api/v1/notifications", user=quiet)
    assert page["unread_count"] == 1
