"""`POST /webhooks/stripe`: only signed events count, each once, in any order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest

from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.services import RunServices
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    event,
    fake_stripe,
    paid_message,
    sign,
    stripe_settings,
    subscription,
)
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _fetch(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _card_checkout(
    api: Api, fake_stripe: FakeStripe, fan: User, message_id: str
) -> dict[str, Any]:
    """The fan starts paying for a paid message by card; the fake Checkout Session it made."""
    status, checkout = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "ppv_message", "target_id": message_id, "pay_with": "card"},
        user=fan,
    )
    assert status == 201, checkout
    session: dict[str, Any] = fake_stripe.sessions[checkout["session_id"]]
    return session


def _invoice_paid(sub_id: str, fan_id: str, creator_id: str, amount: int) -> dict[str, object]:
    return event(
        "invoice.paid",
        {
            "id": f"in_{sub_id}_{amount}",
            "object": "invoice",
            "amount_paid": amount,
            "currency": "usd",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub_id,
                    "metadata": {
                        "bc_kind": "subscription",
                        "bc_user_id": fan_id,
                        "bc_creator_id": creator_id,
                    },
                },
            },
            "lines": {"data": [{"period": {"end": int(time.time()) + 86400 * 30}}]},
        },
    )


async def test_unsigned_forged_stale_or_tampered_events_are_refused_and_nothing_is_stored(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    body = json.dumps(_invoice_paid("sub_forged", fan.id, creator.id, 900)).encode()
    now = int(time.time())
    cases = {
        "missing": None,
        "malformed": "this is not a signature",
        "empty v1": f"t={now},v1=",
        "wrong secret": sign(body, secret="whsec_someone_else"),
        "stale": sign(body, timestamp=now - 3600),
        "tampered": sign(body),
    }
    for name, signature in cases.items():
        status, answer = await hooks.post_raw(
            body.replace(b"900", b"100") if name == "tampered" else body, signature
        )
        assert status == 400, (name, answer)
        assert answer["error"]["code"] == "invalid"
    not_json = b"{not json"
    assert (await hooks.post_raw(not_json, sign(not_json)))[0] == 400
    assert await _fetch(services.database_url, "select 1 from stripe_events") == []
    assert await _fetch(services.database_url, "select 1 from subscriptions") == []
    assert await _fetch(services.database_url, "select 1 from ledger_entries") == []


async def test_the_signature_is_checked_on_the_exact_bytes_sent(api: Api) -> None:
    hooks = Webhooks(api)
    # Odd spacing and key order: re-serialising would change the bytes and break the HMAC.
    body = b'{ "type":"unknown.kind" ,"id":"evt_spacing", "created": %d, "data":{"object":{}}}' % (
        int(time.time())
    )
    status, answer = await hooks.post_raw(body, sign(body))
    assert status == 200, answer
    assert answer["outcome"] == "ignored"


async def test_a_replayed_or_concurrently_duplicated_event_takes_effect_once(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    await hooks.subscribe(fan, creator, sub_id="sub_dup")
    paid = _invoice_paid("sub_dup", fan.id, creator.id, 999)
    body = json.dumps(paid).encode()

    answers = await asyncio.gather(*(hooks.post_raw(body, sign(body)) for _ in range(6)))
    replay = await hooks.send(paid)

    assert [status for status, _ in answers] == [200] * 6
    assert sum(1 for _, answer in answers if not answer["duplicate"]) == 1
    assert replay["duplicate"] is True
    rows = await _fetch(
        services.database_url,
        "select account, amount_cents from ledger_entries order by account",
    )
    assert [(r["account"], r["amount_cents"]) for r in rows] == [
        (f"earnings:{creator.id}", 800),
        ("platform:fee", 199),
        ("stripe:clearing", -999),
    ]


async def test_unknown_event_types_and_unknown_users_are_recorded_and_answered_200(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan = await api.register()
    unknown_type = await hooks.send(event("customer.created", {"id": "cus_1"}))
    ghost = await hooks.send(
        event(
            "customer.subscription.created",
            subscription(
                "sub_ghost",
                {"bc_user_id": fan.id, "bc_creator_id": "no-such-creator"},
                "active",
                int(time.time()) + 1000,
            ),
        )
    )
    stranger_payment = await hooks.send(
        event(
            "payment_intent.succeeded",
            {"id": "pi_x", "metadata": {"bc_purchase_id": "424242"}, "amount_received": 500},
        )
    )
    not_ours = await hooks.send(event("payment_intent.succeeded", {"id": "pi_y", "metadata": {}}))

    assert unknown_type["outcome"] == "ignored"
    assert ghost["outcome"] == "unknown_user"
    assert stranger_payment["outcome"] == "unknown_purchase"
    assert not_ours["outcome"] == "not_a_purchase"
    outcomes = await _fetch(services.database_url, "select outcome from stripe_events")
    assert len(outcomes) == 4
    assert (
        await _fetch(services.database_url, "select 1 from subscriptions where status='active'")
        == []
    )


async def test_out_of_order_subscription_events_converge_to_the_latest_state(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    t = int(time.time()) - 100
    end = t + 86400 * 30
    created = event(
        "customer.subscription.created",
        subscription("sub_o", metadata, "incomplete", end),
        created=t,
    )
    active = event(
        "customer.subscription.updated",
        subscription("sub_o", metadata, "active", end),
        created=t + 5,
    )
    cancelling = event(
        "customer.subscription.updated",
        subscription("sub_o", metadata, "active", end, cancel=True),
        created=t + 10,
    )
    deleted = event(
        "customer.subscription.deleted",
        subscription("sub_o", metadata, "canceled", end),
        created=t + 20,
    )

    for evt in (deleted, cancelling, created, active):
        await hooks.send(evt)

    status, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    assert status == 200
    (only,) = mine["items"]
    assert only["status"] == "canceled" and only["active"] is False
    assert only["cancel_at_period_end"] is False  # the deleted event's own state

    # And in arrival order the same events end in the same place.
    fan2 = await api.register()
    metadata2 = {**metadata, "bc_user_id": fan2.id}
    for evt_type, status_, at in (
        ("customer.subscription.created", "incomplete", t),
        ("customer.subscription.updated", "active", t + 5),
        ("customer.subscription.deleted", "canceled", t + 20),
    ):
        await hooks.send(
            event(evt_type, subscription("sub_o2", metadata2, status_, end), created=at)
        )
    _, theirs = await api.call("GET", "/api/v1/subscriptions", user=fan2)
    assert theirs["items"][0]["status"] == "canceled"


async def test_the_current_period_end_is_read_from_the_subscription_items(
    api: Api,
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    await hooks.subscribe(fan, creator, period_end=1_900_000_000)
    _, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    assert mine["items"][0]["current_period_end"].startswith("2030-03-17")
    assert mine["items"][0]["price_cents"] == 900


async def test_two_different_events_for_one_payment_unlock_once(
    api: Api, sockets: Sockets, services: RunServices, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 400)
    ppv = await sockets.connect("/ppv", fan, events=("ppv:unlocked",))
    session = await _card_checkout(api, fake_stripe, fan, message_id)

    pi = await hooks.pay_session(session)
    second = await hooks.send(
        event(
            "payment_intent.succeeded",
            {
                "id": pi,
                "object": "payment_intent",
                "amount_received": 400,
                "currency": "usd",
                "metadata": session["params"]["payment_intent_data"]["metadata"],
            },
        )
    )

    assert second["outcome"] == "purchase_already_completed"
    await ppv.wait_for("ppv:unlocked")
    await ppv.assert_nothing("ppv:unlocked", within=0.5)
    assert len(ppv.received["ppv:unlocked"]) == 1
    rows = await _fetch(services.database_url, "select 1 from ledger_entries")
    assert len(rows) == 3


async def test_an_unpaid_checkout_session_unlocks_nothing(
    api: Api, sockets: Sockets, services: RunServices, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 400)
    session = dict(await _card_checkout(api, fake_stripe, fan, message_id))
    session.pop("params")
    session.update(status="complete", payment_status="unpaid", payment_intent="pi_unpaid")

    answer = await hooks.send(event("checkout.session.completed", session))

    assert answer["outcome"] == "unpaid_session"
    assert await _fetch(services.database_url, "select 1 from message_unlocks") == []


async def test_a_refund_that_arrives_before_its_payment_keeps_the_message_locked(
    api: Api, sockets: Sockets, services: RunServices, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 400)
    session = await _card_checkout(api, fake_stripe, fan, message_id)
    refund = await hooks.send(
        event(
            "charge.refunded",
            {
                "id": "ch_early",
                "payment_intent": "pi_early",
                "amount_refunded": 400,
                "metadata": {},
            },
        )
    )

    late = await hooks.pay_session(session, payment_intent="pi_early")

    assert refund["outcome"] == "reversal_recorded_before_payment"
    assert late == "pi_early"
    assert await _fetch(services.database_url, "select 1 from message_unlocks") == []
    (purchase,) = await _fetch(services.database_url, "select status from purchases")
    assert purchase["status"] == "refunded"


async def test_without_a_webhook_secret_events_are_refused_as_unavailable(
    settings: Settings,
) -> None:
    async with node(settings, stripe_webhook_secret=None) as bare:
        body = json.dumps(event("customer.created", {"id": "cus_1"})).encode()
        status, answer = await Webhooks(bare.api).post_raw(body, sign(body))
    assert status == 503
    assert "BACKCHANNEL_STRIPE_WEBHOOK_SECRET" in answer["error"]["message"]


async def test_a_refunded_subscription_payment_is_reversed_in_the_ledger(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    await hooks.subscribe(fan, creator, sub_id="sub_r")
    paid = _invoice_paid("sub_r", fan.id, creator.id, 1000)
    paid["data"]["object"]["payments"] = {  # type: ignore[index]
        "data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_sub_r"}}]
    }
    await hooks.send(paid)

    refund = await hooks.send(
        event(
            "charge.refunded", {"id": "ch_r", "payment_intent": "pi_sub_r", "amount_refunded": 1000}
        )
    )

    assert refund["outcome"] == "refund_reversed"
    rows = await _fetch(
        services.database_url,
        "select account, sum(amount_cents) as total from ledger_entries group by account",
    )
    assert {r["account"]: r["total"] for r in rows} == {
        f"earnings:{creator.id}": 0,
        "platform:fee": 0,
        "stripe:clearing": 0,
    }


async def test_an_expired_checkout_fails_its_pending_purchase(
    api: Api, sockets: Sockets, services: RunServices, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 400)
    session = dict(await _card_checkout(api, fake_stripe, fan, message_id))
    session.pop("params")

    expired = await hooks.send(event("checkout.session.expired", {**session, "status": "expired"}))

    assert expired["outcome"] == "purchase_expired"
    (purchase,) = await _fetch(services.database_url, "select status from purchases")
    assert purchase["status"] == "failed"
