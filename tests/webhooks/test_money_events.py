"""Money events from the real payment paths: wallet and card purchases, tips, refunds, and
subscriptions from Stripe."""

from __future__ import annotations

import time

import pytest

from tests.nodes import eventually
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    charge_refunded,
    event,
    fake_stripe,
    paid_message,
    stripe_settings,
    subscription,
)
from tests.support import Api, Sockets
from tests.webhooks.conftest import subscribe
from tests.webhooks.receiver import Receiver

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def test_a_wallet_tip_and_a_card_unlock_then_its_refund(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["purchase.completed", "tip.received", "purchase.refunded"])
    creator, fan = await api.register(role="creator"), await api.register()
    status, _ = await api.call(
        "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=fan
    )
    assert status in (200, 201)
    status, tip = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "tip", "target_id": creator.id, "amount_cents": 333, "pay_with": "wallet"},
        user=fan,
    )
    assert status == 201, tip
    [tipped] = await receiver.wait_delivered("tip.received")
    assert tipped["data"] == {
        "purchase_id": tip["id"],
        "from_user_id": fan.id,
        "creator_id": creator.id,
        "amount_cents": 333,
        "currency": "usd",
    }

    message_id = await paid_message(sockets, creator, fan, 1000)
    status, checkout = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "ppv_message", "target_id": message_id, "pay_with": "card"},
        user=fan,
    )
    assert status == 201, checkout
    pi = f"pi_{checkout['purchase_id']}"
    await Webhooks(api).pay_session(fake_stripe.sessions[checkout["session_id"]], pi)
    completed = await receiver.wait_delivered("purchase.completed", 3)
    kinds = sorted(e["data"]["kind"] for e in completed)
    assert kinds == ["ppv_message", "tip", "wallet_topup"]
    [unlock] = [e for e in completed if e["data"]["kind"] == "ppv_message"]
    assert unlock["data"]["purchase_id"] == str(checkout["purchase_id"])
    assert unlock["data"]["target_id"] == message_id and unlock["data"]["buyer_id"] == fan.id
    assert unlock["data"]["pay_with"] == "card" and unlock["data"]["amount_cents"] == 1000

    await Webhooks(api).send(charge_refunded(pi, 400, [("re_1", 400, "succeeded")]))
    [refunded] = await receiver.wait_delivered("purchase.refunded")
    assert refunded["data"]["purchase_id"] == str(checkout["purchase_id"])
    assert refunded["data"]["refunded_cents"] == 400
    assert refunded["data"]["newly_refunded_cents"] == 400
    # The same refund reported again changes nothing: no second event.
    await Webhooks(api).send(charge_refunded(pi, 400, [("re_1", 400, "succeeded")]))
    await Webhooks(api).send(
        charge_refunded(pi, 1000, [("re_1", 400, "succeeded"), ("re_2", 600, "succeeded")])
    )
    later = await receiver.wait_delivered("purchase.refunded", 2)
    assert [e["data"]["newly_refunded_cents"] for e in later] == [400, 600]


async def test_a_subscription_starts_is_updated_and_ends(
    api: Api, key: str, receiver: Receiver
) -> None:
    await subscribe(
        api,
        key,
        receiver,
        ["subscription.started", "subscription.updated", "subscription.ended"],
    )
    creator, fan = await api.register(role="creator"), await api.register()
    hooks = Webhooks(api)
    sub_id = await hooks.subscribe(fan, creator)
    [started] = await receiver.wait_delivered("subscription.started")
    assert started["data"]["fan_id"] == fan.id and started["data"]["creator_id"] == creator.id
    assert started["data"]["active"] is True

    metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    end = int(time.time()) + 30 * 86400
    await hooks.send(
        event(
            "customer.subscription.updated",
            subscription(sub_id, metadata, "active", end, cancel=True),
            created=int(time.time()) + 1,
        )
    )
    # (Stripe's own follow-up of the checkout may already have been an update.)
    updates = await eventually(
        lambda: [
            e
            for e in receiver.delivered("subscription.updated")
            if e["data"]["cancel_at_period_end"]
        ],
        what="the cancel-at-period-end update",
    )
    [updated] = updates
    assert updated["data"]["active"] is True

    await hooks.send(
        event(
            "customer.subscription.deleted",
            subscription(sub_id, metadata, "canceled", int(time.time()), cancel=True),
            created=int(time.time()) + 2,
        )
    )
    [ended] = await receiver.wait_delivered("subscription.ended")
    assert ended["data"]["status"] == "canceled" and ended["data"]["active"] is False
    assert len({started["id"], updated["id"], ended["id"]}) == 3


async def test_a_paid_dm_is_a_message_created_a_purchase_and_a_tip_in_one_transaction(
    api: Api, sockets: Sockets, key: str, receiver: Receiver
) -> None:
    await subscribe(api, key, receiver, ["message.created", "purchase.completed", "tip.received"])
    creator, fan = await api.register(role="creator"), await api.register()
    status, _ = await api.call(
        "PATCH",
        "/api/v1/profiles/me",
        json={"dm_policy": "paid", "dm_price_cents": 200},
        user=creator,
    )
    assert status == 200
    status, _ = await api.call(
        "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 300}, user=fan
    )
    assert status == 200
    chat = await sockets.connect("/chat", fan)
    opened = await chat.call("conversation:open", {"participant_ids": [creator.id]})
    dm = opened["data"]["id"]
    ack = await chat.call("message:send", {"conversation_id": dm, "client_id": "p1", "body": "hi"})
    assert ack["ok"], ack
    refused = await chat.call(
        "message:send", {"conversation_id": dm, "client_id": "p2", "body": "again"}
    )
    assert refused["error"]["code"] == "payment_required"  # rolled back: no events for it

    [created] = await receiver.wait_delivered("message.created")
    assert created["data"]["message_id"] == ack["data"]["id"]
    [tipped] = await receiver.wait_delivered("tip.received")
    assert tipped["data"]["from_user_id"] == fan.id and tipped["data"]["amount_cents"] == 200
    completed = await receiver.wait_delivered("purchase.completed", 2)  # the top-up, the DM
    assert sorted(e["data"]["kind"] for e in completed) == ["tip", "wallet_topup"]
    assert len(receiver.delivered("message.created")) == 1
