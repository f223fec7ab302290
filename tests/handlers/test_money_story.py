"""The money story, end to end against the real server, Stripe faked only at its edges."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from backchannel.server.settings import Settings
from tests.services import RunServices
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    event,
    fake_stripe,
    ledger_problems,
    sign,
    with_stripe,
)
from tests.support import Api, Sockets

__all__ = ["fake_stripe"]


@pytest.fixture
def settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    """Stripe pointed at the fake; dev top-ups on."""
    return with_stripe(settings, fake_stripe)


@pytest.fixture(autouse=True)
async def _ledger_balances(services: RunServices) -> AsyncIterator[None]:
    yield
    assert await ledger_problems(services.database_url) == []


async def test_a_fan_subscribes_unlocks_by_wallet_and_card_and_a_refund_relocks_live(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    await api.call(
        "PATCH", "/api/v1/profiles/me", json={"subscription_price_cents": 999}, user=creator
    )
    status, post = await api.call(
        "POST",
        "/api/v1/content",
        json={"title": "Behind the scenes", "body": "the whole story", "visibility": "subscribers"},
        user=creator,
    )
    assert status == 201
    studio = await sockets.connect(
        "/ppv", creator, events=("subscription:started", "ppv:purchased")
    )
    studio_chat = await sockets.connect("/chat", creator)
    studio_inbox = await sockets.connect("/notifications", creator, events=("notification",))
    events = ("ppv:unlocked", "ppv:locked", "wallet:balance")
    phone, laptop = [await sockets.connect("/ppv", fan, events=events) for _ in range(2)]
    fan_chat = await sockets.connect("/chat", fan, events=("message:new", "message:broadcast"))
    assert (await api.call("GET", f"/api/v1/content/{post['id']}", user=fan))[0] == 402

    # The fan subscribes by card; Stripe tells us through signed webhooks.
    status, checkout = await api.call(
        "POST", f"/api/v1/creators/{creator.id}/subscription", user=fan
    )
    assert status == 201
    params = fake_stripe.sessions[checkout["session_id"]]["params"]
    metadata = params["subscription_data"]["metadata"]
    sub_id = "sub_story"
    await hooks.send(
        event(
            "checkout.session.completed",
            {
                "id": checkout["session_id"],
                "object": "checkout.session",
                "mode": "subscription",
                "payment_status": "paid",
                "client_reference_id": params["client_reference_id"],
                "subscription": sub_id,
                "metadata": params["metadata"],
            },
        )
    )
    await hooks.send(
        event(
            "invoice.paid",
            {
                "id": "in_story",
                "object": "invoice",
                "amount_paid": 999,
                "currency": "usd",
                "parent": {"subscription_details": {"subscription": sub_id, "metadata": metadata}},
                "lines": {"data": [{"period": {"end": int(time.time()) + 30 * 86400}}]},
            },
        )
    )
    (started,) = await studio.wait_for("subscription:started")
    assert started["fan_id"] == fan.id
    (note,) = await studio_inbox.wait_for("notification")
    assert note["type"] == "subscription.started" and note["data"]["fan_id"] == fan.id
    status, opened = await api.call("GET", f"/api/v1/content/{post['id']}", user=fan)
    assert status == 200 and opened["body"] == "the whole story"

    # The creator sends a paid message, then a broadcast to every subscriber.
    conversation = await studio_chat.call("conversation:open", {"participant_ids": [fan.id]})
    conversation_id = conversation["data"]["id"]
    sent = await studio_chat.call(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_id": "story-1",
            "body": "just for you",
            "price_cents": 500,
            "preview_text": "something special",
        },
    )
    assert sent["ok"], sent
    (arrived,) = await fan_chat.wait_for("message:new")
    assert arrived["locked"] is True and arrived["body"] is None
    broadcast = await studio.call(
        "ppv:broadcast", {"client_id": "story-b", "body": "for everyone", "price_cents": 700}
    )
    assert broadcast["data"]["recipients"] == 1
    await fan_chat.wait_for("message:broadcast")
    synced = await fan_chat.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
    )
    by_price = {m["price_cents"]: m for m in synced["data"]["items"]}
    assert all(m["locked"] for m in by_price.values())
    direct_id, broadcast_id = by_price[500]["id"], by_price[700]["id"]

    # One unlock from the wallet...
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 600}, user=fan)
    ack = await phone.call("ppv:unlock", {"message_id": direct_id, "pay_with": "wallet"})
    assert ack["ok"] and ack["data"]["body"] == "just for you"
    for device in (phone, laptop):
        (unlocked,) = await device.wait_for("ppv:unlocked")
        assert unlocked["message_id"] == direct_id
    assert (await phone.wait_for("wallet:balance", 2))[-1]["balance_cents"] == 100

    # ...and one by card, because the wallet no longer covers it.
    short = await laptop.call("ppv:unlock", {"message_id": broadcast_id})
    assert short["error"]["code"] == "payment_required"
    card = short["error"]["details"]["card"]
    status, checkout = await api.call("POST", card["path"], json=card["body"], user=fan)
    assert status == 201, checkout
    pi = await hooks.pay_session(fake_stripe.sessions[checkout["session_id"]])
    for device in (phone, laptop):
        unlocked_all = await device.wait_for("ppv:unlocked", 2)
        assert unlocked_all[1]["message"]["body"] == "for everyone"
    sales = await studio.wait_for("ppv:purchased", 2)
    assert sorted(s["amount_cents"] for s in sales) == [500, 700]
    notes = await studio_inbox.wait_for("notification", 3)
    assert [n["type"] for n in notes[1:]] == ["ppv.purchased", "ppv.purchased"]
    assert sorted(n["body"] for n in notes[1:]) == [
        "A fan unlocked your message for 5.00 USD",
        "A fan unlocked your message for 7.00 USD",
    ]
    synced = await fan_chat.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
    )
    assert not any(m["locked"] for m in synced["data"]["items"])

    # Stripe refunds the card payment: the message locks again on both devices, live.
    body = json.dumps(
        event("charge.refunded", {"id": "ch_story", "payment_intent": pi, "amount_refunded": 700})
    ).encode()
    status, _ = await hooks.post_raw(body, sign(body))
    assert status == 200
    for device in (phone, laptop):
        (relocked,) = await device.wait_for("ppv:locked")
        assert relocked["message_id"] == broadcast_id
        assert relocked["message"]["locked"] is True
    synced = await fan_chat.call(
        "messages:sync", {"conversation_id": conversation_id, "after_seq": 0}
    )
    states = {m["id"]: m["locked"] for m in synced["data"]["items"]}
    assert states == {direct_id: False, broadcast_id: True}
