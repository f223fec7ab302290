"""Subscriptions: Stripe Checkout, live room membership on every node, cancel, list."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    event,
    fake_stripe,
    stripe_settings,
    subscription,
    with_stripe,
)
from tests.support import Api, Socket, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _priced_creator(api: Api, cents: int = 900) -> User:
    creator = await api.register(role="creator")
    status, _ = await api.call(
        "PATCH", "/api/v1/profiles/me", json={"subscription_price_cents": cents}, user=creator
    )
    assert status == 200
    return creator


async def _broadcast(studio: Socket, client_id: str) -> int:
    ack = await studio.call(
        "ppv:broadcast", {"client_id": client_id, "body": "new set", "price_cents": 300}
    )
    assert ack["ok"], ack
    return int(ack["data"]["recipients"])


async def test_subscribing_opens_a_checkout_with_our_ids_where_stripe_copies_them(
    api: Api, fake_stripe: FakeStripe
) -> None:
    creator, fan = await _priced_creator(api, 1299), await api.register()

    status, checkout = await api.call(
        "POST", f"/api/v1/creators/{creator.id}/subscription", user=fan
    )

    assert status == 201, checkout
    assert checkout["checkout_url"].startswith("https://checkout.stripe.test/")
    params = fake_stripe.sessions[checkout["session_id"]]["params"]
    expected = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    assert params["mode"] == "subscription"
    assert params["subscription_data"]["metadata"] == expected
    assert params["client_reference_id"] == fan.id
    price = params["line_items"]["0"]["price_data"]
    assert price["unit_amount"] == "1299" and price["recurring"]["interval"] == "month"


async def test_who_cannot_subscribe(api: Api) -> None:
    fan, unpriced = await api.register(), await api.register(role="creator")
    creator = await _priced_creator(api)
    assert (await api.call("POST", f"/api/v1/creators/{unpriced.id}/subscription", user=fan))[
        0
    ] == 409
    assert (await api.call("POST", f"/api/v1/creators/{fan.id}/subscription", user=creator))[
        0
    ] == 404
    assert (await api.call("POST", f"/api/v1/creators/{creator.id}/subscription", user=creator))[
        0
    ] == 400
    await Webhooks(api).subscribe(fan, creator)
    assert (await api.call("POST", f"/api/v1/creators/{creator.id}/subscription", user=fan))[
        0
    ] == 409


async def test_a_subscription_joins_open_sockets_live_and_its_end_takes_them_out(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await _priced_creator(api), await api.register()
    chat = await sockets.connect("/chat", fan, events=("message:broadcast",))
    studio = await sockets.connect(
        "/ppv", creator, events=("subscription:started", "subscription:ended")
    )
    assert await _broadcast(studio, "before") == 0

    sub_id = await hooks.subscribe(fan, creator)

    (started,) = await studio.wait_for("subscription:started")
    assert started["fan_id"] == fan.id and started["status"] == "active"
    assert await _broadcast(studio, "during") == 1
    (live,) = await chat.wait_for("message:broadcast")
    assert live["locked"] is True
    later = await sockets.connect("/chat", fan, events=("message:broadcast",))
    assert await _broadcast(studio, "for-both") == 1
    await later.wait_for("message:broadcast")
    await chat.wait_for("message:broadcast", 2)

    status, cancelled = await api.call(
        "DELETE", f"/api/v1/creators/{creator.id}/subscription", user=fan
    )
    assert status == 200 and cancelled["cancel_at_period_end"] is True
    assert cancelled["active"] is True
    update = fake_stripe.requests[-1]
    assert update["path"] == f"/v1/subscriptions/{sub_id}"
    assert update["params"]["cancel_at_period_end"] == "true"

    metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    await hooks.send(
        event(
            "customer.subscription.deleted",
            subscription(sub_id, metadata, "canceled", int(time.time()), cancel=True),
        )
    )
    await studio.wait_for("subscription:ended")
    assert await _broadcast(studio, "after") == 0
    await chat.assert_nothing("message:broadcast")
    _, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    assert [(s["creator_id"], s["status"]) for s in mine["items"]] == [(creator.id, "canceled")]


async def test_a_webhook_on_one_node_moves_the_fans_sockets_on_another(
    cluster_settings: Settings, fake_stripe: FakeStripe
) -> None:
    stripe_settings = with_stripe(cluster_settings, fake_stripe)
    async with node(stripe_settings) as a, node(stripe_settings) as b:
        creator, fan = await _priced_creator(a.api), await a.api.register()
        on_b = await b.sockets.connect("/chat", fan, events=("message:broadcast",))
        studio = await a.sockets.connect("/ppv", creator)

        await Webhooks(a.api).subscribe(fan, creator)

        # The join is applied by node B when it hears of it; a broadcast then reaches B.
        for attempt in range(40):
            await _broadcast(studio, f"probe-{attempt}")
            try:
                await on_b.wait_for("message:broadcast", timeout=0.25)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the fan's socket on node B never joined the room")


def _invoice(
    type_: str, sub_id: str, metadata: dict[str, str], period_end: int, created: int
) -> dict[str, Any]:
    """`invoice.paid` / `invoice.payment_failed` for one period of a subscription."""
    paid = type_ == "invoice.paid"
    return event(
        type_,
        {
            "id": f"in_{sub_id}_{period_end}",
            "object": "invoice",
            "amount_paid": 900 if paid else 0,
            "currency": "usd",
            "parent": {"subscription_details": {"subscription": sub_id, "metadata": metadata}},
            "lines": {"data": [{"period": {"end": period_end}}]},
        },
        created=created,
    )


async def test_a_failed_renewal_withholds_access_but_keeps_the_last_paid_period_end(
    api: Api, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await _priced_creator(api), await api.register()
    status, post = await api.call(
        "POST",
        "/api/v1/content",
        json={"title": "For subscribers", "body": "inside", "visibility": "subscribers"},
        user=creator,
    )
    assert status == 201
    now = int(time.time())
    paid_end, unpaid_end = now + 30 * 86400, now + 60 * 86400
    sub_id = await hooks.subscribe(fan, creator, period_end=paid_end)
    metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    await hooks.send(_invoice("invoice.paid", sub_id, metadata, paid_end, now + 1))

    # Renewal fails: Stripe has already started the next period, and says so everywhere.
    await hooks.send(_invoice("invoice.payment_failed", sub_id, metadata, unpaid_end, now + 2))
    await hooks.send(
        event(
            "customer.subscription.updated",
            subscription(sub_id, metadata, "past_due", unpaid_end),
            created=now + 3,
        )
    )

    _, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    (sub,) = mine["items"]
    assert sub["status"] == "past_due"
    assert sub["current_period_end"] == _iso(paid_end)
    assert (await api.call("GET", f"/api/v1/content/{post['id']}", user=fan))[0] == 402

    await hooks.send(_invoice("invoice.paid", sub_id, metadata, unpaid_end, now + 4))

    _, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    (sub,) = mine["items"]
    assert sub["status"] == "active"
    assert sub["current_period_end"] == _iso(unpaid_end)
    assert (await api.call("GET", f"/api/v1/content/{post['id']}", user=fan))[0] == 200


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
