"""Delivery: signed POSTs, retries with the same event id, the deliveries list, manual retry,
and an endpoint disabled after failing for the whole window."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from backchannel.domain import webhook_delivery
from backchannel.server.keys import RUNTIME
from tests.chat_support import open_dm, sent
from tests.nodes import eventually
from tests.support import Api, Sockets, User
from tests.webhooks.conftest import ENDPOINTS, bearer, subscribe
from tests.webhooks.receiver import Receiver


async def send(sockets: Sockets, sender: User, conversation_id: str, body: str) -> dict[str, Any]:
    """A message sent over `/chat`, as a client sends it."""
    chat = await sockets.connect("/chat", sender)
    ack = await chat.call(
        "message:send", {"conversation_id": conversation_id, "client_id": body, "body": body}
    )
    await chat.disconnect()
    return sent(ack)


async def deliveries(api: Api, key: str, endpoint_id: str, query: str = "") -> dict[str, Any]:
    """`GET …/deliveries`."""
    status, page = await api.call(
        "GET", f"{ENDPOINTS}/{endpoint_id}/deliveries{query}", headers=bearer(key)
    )
    assert status == 200, page
    return page


async def test_every_delivery_is_signed_as_documented_and_carries_the_event(
    api: Api, sockets: Sockets, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["message.created"])
    creator, fan = await api.register(role="creator"), await api.register()
    dm = await open_dm(sockets, creator, fan)
    first = await send(sockets, creator, dm, "hello")
    second = await send(sockets, fan, dm, "hi back")

    events = await receiver.wait_delivered("message.created", 2)
    assert all(r.signed for r in receiver.received), "every POST verifies with the docs' rule"
    by_message = {e["data"]["message_id"]: e for e in events}
    assert set(by_message) == {first["id"], second["id"]}
    event = by_message[first["id"]]
    assert event["data"] | {"created_at": None} == {
        "message_id": first["id"],
        "conversation_id": dm,
        "sender_id": creator.id,
        "seq": first["seq"],
        "paid": False,
        "price_cents": None,
        "currency": "usd",
        "media_count": 0,
        "broadcast_id": None,
        "created_at": None,
    }
    assert "body" not in event["data"], "no body unless the endpoint asked for bodies"
    assert set(event) == {"id", "type", "created_at", "data"}
    assert {r.event_id for r in receiver.received} == {e["id"] for e in events}

    # A tampered body or another secret does not verify.
    raw, header = receiver.received[0], receiver.headers[0]
    assert receiver.verify(receiver.secret, raw.body, header)
    assert not receiver.verify(receiver.secret, raw.body + b" ", header)
    assert not receiver.verify("whsec_other", raw.body, header)


async def test_include_bodies_adds_the_message_body(
    api: Api, sockets: Sockets, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["*"], include_bodies=True)
    creator, fan = await api.register(role="creator"), await api.register()
    dm = await open_dm(sockets, creator, fan)
    await send(sockets, creator, dm, "the body")
    [event] = await receiver.wait_delivered("message.created")
    assert event["data"]["body"] == "the body"


async def test_a_receiver_failing_three_times_gets_the_same_event_id_on_the_fourth(
    api: Api, sockets: Sockets, key: str, receiver: Receiver
) -> None:
    receiver.fail_times = 3
    endpoint = await subscribe(api, key, receiver, ["message.created"])
    creator, fan = await api.register(role="creator"), await api.register()
    dm = await open_dm(sockets, creator, fan)
    await send(sockets, creator, dm, "persist")

    [event] = await receiver.wait_delivered("message.created")
    attempts = [r for r in receiver.received if r.event["type"] == "message.created"]
    assert [r.status for r in attempts] == [500, 500, 500, 200]
    assert {r.event_id for r in attempts} == {event["id"]}
    assert {r.body for r in attempts} == {attempts[0].body}, "the same bytes every time"
    assert all(r.signed for r in attempts)

    page = await eventually(
        lambda: _delivered_page(api, key, endpoint["id"]), what="delivery recorded"
    )
    [delivery] = page["items"]
    assert delivery["event_id"] == event["id"] and delivery["type"] == "message.created"
    assert delivery["attempts"] == 4 and delivery["last_status"] == 200
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is not None


async def _delivered_page(api: Api, key: str, endpoint_id: str) -> dict[str, Any] | None:
    page = await deliveries(api, key, endpoint_id, "?status=delivered")
    return page if page["items"] else None


async def test_deliveries_page_filter_and_manual_retry(
    api: Api, server: TestServer, key: str, receiver: Receiver
) -> None:
    # A short window: the endpoint's deliveries fail for good within a second.
    rt = server.app[RUNTIME]
    rt.settings = rt.settings.model_copy(update={"webhook_retry_window_seconds": 0.4})
    receiver.fail_times = 1000
    endpoint = await subscribe(api, key, receiver, ["notification.created"])
    fans = [await api.register() for _ in range(3)]
    for fan in fans:
        status, _ = await api.call(
            "POST",
            "/api/v1/publish",
            json={"user_ids": [fan.id], "notification": {"type": "news", "title": "Hi"}},
            headers=bearer(key),
        )
        assert status == 202

    async def all_failed() -> dict[str, Any] | None:
        page = await deliveries(api, key, endpoint["id"], "?status=failed")
        return page if len(page["items"]) == 3 else None

    failed = await eventually(all_failed, timeout=10, what="three failed deliveries")
    ids = [d["id"] for d in failed["items"]]
    assert ids == sorted(ids, key=int, reverse=True), "newest first"
    assert all(d["attempts"] >= 1 and d["last_status"] == 500 for d in failed["items"])

    # Paging: two, then the rest.
    first = await deliveries(api, key, endpoint["id"], "?limit=2")
    assert [d["id"] for d in first["items"]] == ids[:2] and first["next_cursor"] == ids[1]
    rest = await deliveries(api, key, endpoint["id"], f"?limit=2&cursor={first['next_cursor']}")
    assert [d["id"] for d in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    assert (await deliveries(api, key, endpoint["id"], "?status=delivered"))["items"] == []
    status, bad = await api.call(
        "GET", f"{ENDPOINTS}/{endpoint['id']}/deliveries?status=lost", headers=bearer(key)
    )
    assert status == 400 and bad["error"]["code"] == "invalid"

    # The backend is fixed; retrying one delivery delivers exactly that event. (Failing for
    # the whole window also disabled the endpoint: a retry waits for it to be enabled.)
    receiver.fail_times = 0
    rt.settings = rt.settings.model_copy(update={"webhook_retry_window_seconds": 60.0})
    retried = failed["items"][1]
    status, body = await api.call(
        "POST",
        f"{ENDPOINTS}/{endpoint['id']}/deliveries/{retried['id']}/retry",
        headers=bearer(key),
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    status, _ = await api.call(
        "PATCH", f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": True}, headers=bearer(key)
    )
    assert status == 200
    status, answer = await api.call(
        "POST",
        f"{ENDPOINTS}/{endpoint['id']}/deliveries/{retried['id']}/retry",
        headers=bearer(key),
    )
    assert status == 202, answer
    assert answer["id"] == retried["id"] and answer["status"] == "pending"
    [event] = await receiver.wait_delivered("notification.created")
    assert event["id"] == retried["event_id"]
    page = await eventually(
        lambda: _delivered_page(api, key, endpoint["id"]), what="retried delivery recorded"
    )
    assert [d["id"] for d in page["items"]] == [retried["id"]]

    for path, code in (
        (f"{ENDPOINTS}/{endpoint['id']}/deliveries/999999/retry", 404),
        (f"{ENDPOINTS}/999999/deliveries/{retried['id']}/retry", 404),
        (f"{ENDPOINTS}/{endpoint['id']}/deliveries/x/retry", 404),
    ):
        status, body = await api.call("POST", path, headers=bearer(key))
        assert status == code, (path, body)
    status, _ = await api.call(
        "POST", f"{ENDPOINTS}/{endpoint['id']}/deliveries/{retried['id']}/retry"
    )
    assert status == 401


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_admins_are_told(
    api: Api, server: TestServer, key: str, receiver: Receiver
) -> None:
    rt = server.app[RUNTIME]
    rt.settings = rt.settings.model_copy(update={"webhook_retry_window_seconds": 0.5})
    receiver.fail_status = 503
    receiver.fail_times = 1000
    admin = await api.register()
    await _make_admin(rt, admin.id)
    endpoint = await subscribe(api, key, receiver, ["report.created", "notification.created"])
    fan = await api.register()
    status, _ = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [fan.id], "notification": {"type": "news", "title": "Hi"}},
        headers=bearer(key),
    )
    assert status == 202

    async def disabled() -> dict[str, Any] | None:
        _, body = await api.call("GET", f"{ENDPOINTS}/{endpoint['id']}", headers=bearer(key))
        return body if not body["enabled"] else None

    view = await eventually(disabled, timeout=10, what="endpoint disabled")
    assert view["disabled_reason"] and view["failing_since"] is not None
    status, inbox = await api.call("GET", "/api/v1/notifications", user=admin)
    assert status == 200
    [told] = [n for n in inbox["items"] if n["type"] == "webhook.endpoint_disabled"]
    assert told["data"] == {"endpoint_id": endpoint["id"], "url": receiver.url, "owner": "platform"}

    # Disabled: nothing is queued for it; re-enabled, it receives again.
    status, _ = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [fan.id], "notification": {"type": "news", "title": "While off"}},
        headers=bearer(key),
    )
    assert status == 202
    page = await deliveries(api, key, endpoint["id"])
    assert {d["status"] for d in page["items"]} == {"failed"} and len(page["items"]) == 1
    status, view = await api.call(
        "PATCH", f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": True}, headers=bearer(key)
    )
    assert status == 200 and view["enabled"] and view["failing_since"] is None
    receiver.fail_times = 0
    status, _ = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [fan.id], "notification": {"type": "news", "title": "Again"}},
        headers=bearer(key),
    )
    [event] = await receiver.wait_delivered("notification.created")
    assert event["data"]["title"] == "Again"
    titles = {r.event["data"]["title"] for r in receiver.received}
    assert "While off" not in titles


async def _make_admin(rt: Any, user_id: str) -> None:
    async with rt.db.connection() as conn:
        await conn.execute("update users set role = 'admin' where id = $1", user_id)


async def test_old_events_with_nothing_pending_are_pruned_with_their_deliveries(
    api: Api, server: TestServer, key: str, receiver: Receiver
) -> None:
    rt = server.app[RUNTIME]
    endpoint = await subscribe(api, key, receiver, ["notification.created"])
    fan = await api.register()
    for title in ("old and done", "old and pending"):
        status, _ = await api.call(
            "POST",
            "/api/v1/publish",
            json={"user_ids": [fan.id], "notification": {"type": "news", "title": title}},
            headers=bearer(key),
        )
        assert status == 202
    await receiver.wait_delivered("notification.created", 2)
    async with rt.db.connection() as conn:
        # Both happened 31 days ago; one is still pending (its endpoint kept failing).
        await conn.execute("update webhook_events set created_at = now() - interval '31 days'")
        await conn.execute(
            "update webhook_deliveries d set status = 'pending', next_attempt_at = now() "
            "+ interval '1 hour' from webhook_events e "
            "where e.id = d.event_id and e.data->>'title' = 'old and pending'"
        )
    assert await webhook_delivery.prune(rt) == 1
    page = await deliveries(api, key, endpoint["id"])
    assert [d["status"] for d in page["items"]] == ["pending"]
    assert await webhook_delivery.prune(rt) == 0
