"""`/purchases` and `/wallet`: card checkouts, tips, top-ups, refunds, and the outbox."""

from __future__ import annotations

import asyncio

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
    stripe_settings,
    with_stripe,
)
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _buy_by_card(api: Api, fan: User, **body: object) -> dict[str, object]:
    status, answer = await api.call(
        "POST", "/api/v1/purchases", json={**body, "pay_with": "card"}, user=fan
    )
    assert status == 201, answer
    return dict(answer)


async def test_a_card_purchase_carries_our_ids_where_stripe_copies_them(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 650)

    checkout = await _buy_by_card(api, fan, kind="ppv_message", target_id=message_id)

    assert checkout["status"] == "pending"
    assert str(checkout["checkout_url"]).startswith("https://checkout.stripe.test/")
    (request,) = fake_stripe.requests
    params = request["params"]
    expected = {
        "bc_kind": "ppv_message",
        "bc_user_id": fan.id,
        "bc_creator_id": creator.id,
        "bc_target_id": message_id,
        "bc_purchase_id": checkout["purchase_id"],
    }
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == fan.id
    assert params["metadata"] == expected
    assert params["payment_intent_data"]["metadata"] == expected
    assert params["line_items"]["0"]["price_data"]["unit_amount"] == "650"
    assert request["idempotency_key"] == f"bc-purchase-{checkout['purchase_id']}"
    assert request["auth"] == "Bearer sk_test_fake"


async def test_paying_by_card_unlocks_on_every_device_and_history_shows_it_whole(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 650)
    devices = [await sockets.connect("/ppv", fan, events=("ppv:unlocked",)) for _ in range(2)]
    studio = await sockets.connect("/ppv", creator, events=("ppv:purchased",))
    checkout = await _buy_by_card(api, fan, kind="ppv_message", target_id=message_id)

    await Webhooks(api).pay_session(fake_stripe.sessions[str(checkout["session_id"])])

    for device in devices:
        (unlocked,) = await device.wait_for("ppv:unlocked")
        assert unlocked["message"]["body"] == "secret"
        assert unlocked["message"]["locked"] is False
    (sale,) = await studio.wait_for("ppv:purchased")
    assert sale["amount_cents"] == 650 and sale["buyer_id"] == fan.id
    conversation_id = unlocked["conversation_id"]
    status, history = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=fan
    )
    assert status == 200
    assert history["items"][0]["body"] == "secret"
    again = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "ppv_message", "target_id": message_id, "pay_with": "card"},
        user=fan,
    )
    assert again[0] == 409


async def test_without_a_stripe_key_card_flows_are_unavailable_and_the_wallet_still_works(
    settings: Settings,
) -> None:
    async with node(settings, stripe_secret_key=None) as bare:
        creator, fan = await bare.api.register(role="creator"), await bare.api.register()
        await bare.api.call(
            "PATCH", "/api/v1/profiles/me", json={"subscription_price_cents": 500}, user=creator
        )
        message_id = await paid_message(bare.sockets, creator, fan, 300)
        status, answer = await bare.api.call(
            "POST",
            "/api/v1/purchases",
            json={"kind": "ppv_message", "target_id": message_id, "pay_with": "card"},
            user=fan,
        )
        assert status == 503
        assert "BACKCHANNEL_STRIPE_SECRET_KEY" in answer["error"]["message"]
        status, answer = await bare.api.call(
            "POST", f"/api/v1/creators/{creator.id}/subscription", user=fan
        )
        assert status == 503
        await bare.api.call(
            "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 300}, user=fan
        )
        status, bought = await bare.api.call(
            "POST",
            "/api/v1/purchases",
            json={"kind": "ppv_message", "target_id": message_id, "pay_with": "wallet"},
            user=fan,
        )
        assert status == 201 and bought["status"] == "completed"
        ppv = await bare.sockets.connect("/ppv", fan)
        short = await ppv.call(
            "ppv:unlock", {"message_id": await paid_message(bare.sockets, creator, fan, 300)}
        )
        assert short["error"]["details"]["pay_with"] == []
        assert short["error"]["details"]["card"]["available"] is False


async def test_tips_by_wallet_and_by_card_reach_the_creator_live(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    studio = await sockets.connect("/ppv", creator, events=("tip:received",))
    inbox = await sockets.connect("/notifications", creator, events=("notification",))
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=fan)

    status, tip = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "tip", "target_id": creator.id, "amount_cents": 333, "pay_with": "wallet"},
        user=fan,
    )
    checkout = await _buy_by_card(api, fan, kind="tip", target_id=creator.id, amount_cents=250)
    await Webhooks(api).pay_session(fake_stripe.sessions[str(checkout["session_id"])])

    assert status == 201 and tip["status"] == "completed"
    tips = await studio.wait_for("tip:received", 2)
    assert sorted(t["amount_cents"] for t in tips) == [250, 333]
    assert {t["from_user_id"] for t in tips} == {fan.id}
    notes = await inbox.wait_for("notification", 2)
    assert {n["type"] for n in notes} == {"tip.received"}
    assert sorted(n["body"] for n in notes) == [
        "A fan tipped you 2.50 USD",
        "A fan tipped you 3.33 USD",
    ]
    conn = await asyncpg.connect(services.database_url)
    try:
        earned = await conn.fetchval(
            "select sum(amount_cents) from ledger_entries where account = $1",
            f"earnings:{creator.id}",
        )
        fee = await conn.fetchval(
            "select sum(amount_cents) from ledger_entries where account = 'platform:fee'"
        )
    finally:
        await conn.close()
    # 333 -> fee 66 (floor of 66.6), creator 267; 250 -> fee 50, creator 200.
    assert (earned, fee) == (467, 116)
    status, _ = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "tip", "target_id": fan.id, "amount_cents": 100, "pay_with": "wallet"},
        user=creator,
    )
    assert status == 404


async def test_a_card_top_up_credits_the_wallet_and_pushes_the_balance(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    fan = await api.register()
    ppv = await sockets.connect("/ppv", fan, events=("wallet:balance",))
    checkout = await _buy_by_card(api, fan, kind="wallet_topup", amount_cents=2500)
    assert fake_stripe.last_session()["metadata"]["bc_kind"] == "wallet_topup"

    await Webhooks(api).pay_session(fake_stripe.sessions[str(checkout["session_id"])])

    (balance,) = await ppv.wait_for("wallet:balance")
    assert balance == {"balance_cents": 2500, "currency": "usd", "version": 1}
    status, wallet = await api.call("GET", "/api/v1/wallet", user=fan)
    assert status == 200 and wallet["balance_cents"] == 2500
    assert [e["amount_cents"] for e in wallet["entries"]] == [2500]
    status, _ = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "wallet_topup", "amount_cents": 100, "pay_with": "wallet"},
        user=fan,
    )
    assert status == 400


async def test_a_refund_relocks_live_and_reverses_the_ledger_and_a_dispute_does_too(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    first, second = [await paid_message(sockets, creator, fan, 500) for _ in range(2)]
    ppv = await sockets.connect("/ppv", fan, events=("ppv:unlocked", "ppv:locked"))
    pis = []
    for message_id in (first, second):
        checkout = await _buy_by_card(api, fan, kind="ppv_message", target_id=message_id)
        pis.append(await hooks.pay_session(fake_stripe.sessions[str(checkout["session_id"])]))
    await ppv.wait_for("ppv:unlocked", 2)

    refund = await hooks.send(
        event("charge.refunded", {"id": "ch_1", "payment_intent": pis[0], "amount_refunded": 500})
    )
    dispute = await hooks.send(
        event("charge.dispute.created", {"id": "dp_1", "payment_intent": pis[1], "amount": 500})
    )

    assert refund["outcome"] == "refund_reversed"
    assert dispute["outcome"] == "dispute_reversed"
    locked = await ppv.wait_for("ppv:locked", 2)
    assert {item["message_id"] for item in locked} == {first, second}
    for item in locked:
        assert item["message"]["locked"] is True and item["message"]["body"] is None
    status, history = await api.call(
        "GET", f"/api/v1/conversations/{locked[0]['conversation_id']}/messages", user=fan
    )
    assert status == 200
    assert all(m["locked"] for m in history["items"])
    conn = await asyncpg.connect(services.database_url)
    try:
        earned = await conn.fetchval(
            "select sum(amount_cents) from ledger_entries where account = $1",
            f"earnings:{creator.id}",
        )
    finally:
        await conn.close()
    assert earned == 0


async def test_an_event_committed_but_never_emitted_is_delivered_by_the_outbox_task(
    settings: Settings, services: RunServices
) -> None:
    async with node(settings, outbox_poll_seconds=0.2) as server:
        fan = await server.api.register()
        ppv = await server.sockets.connect("/ppv", fan, events=("wallet:balance",))
        conn = await asyncpg.connect(services.database_url)
        try:
            # What a process that died right after commit leaves behind: an unsent row.
            await conn.execute(
                "insert into outbox (kind, namespaces, target, event, payload)"
                " values ('emit_user', '{/ppv}', $1, 'wallet:balance',"
                ' \'{"balance_cents": 42, "currency": "usd"}\')',
                fan.id,
            )
            (balance,) = await ppv.wait_for("wallet:balance", timeout=6)
            assert balance == {"balance_cents": 42, "currency": "usd"}
            for _ in range(50):
                if await conn.fetchval("select sent_at is not null from outbox"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the outbox row was never marked sent")
        finally:
            await conn.close()


async def test_dev_top_ups_are_refused_unless_enabled(settings: Settings) -> None:
    async with node(settings, dev_topup=False) as bare:
        fan = await bare.api.register()
        status, answer = await bare.api.call(
            "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 100}, user=fan
        )
    assert status == 404
    assert "BACKCHANNEL_DEV_TOPUP" in answer["error"]["message"]


async def test_a_card_payment_for_something_bought_meanwhile_goes_to_the_wallet(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 400)
    checkout = await _buy_by_card(api, fan, kind="ppv_message", target_id=message_id)
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 400}, user=fan)
    ppv = await sockets.connect("/ppv", fan, events=("wallet:balance",))
    assert (await ppv.call("ppv:unlock", {"message_id": message_id}))["ok"]

    await Webhooks(api).pay_session(fake_stripe.sessions[str(checkout["session_id"])])

    balances = await ppv.wait_for("wallet:balance", 2)
    assert balances[-1]["balance_cents"] == 400


async def test_a_payment_confirmed_on_one_node_unlocks_on_the_fans_devices_on_another(
    cluster_settings: Settings, fake_stripe: FakeStripe
) -> None:
    stripe_settings = with_stripe(cluster_settings, fake_stripe)
    async with node(stripe_settings) as a, node(stripe_settings) as b:
        creator, fan = await a.api.register(role="creator"), await a.api.register()
        message_id = await paid_message(a.sockets, creator, fan, 500)
        on_a = await a.sockets.connect("/ppv", fan, events=("ppv:unlocked",))
        on_b = await b.sockets.connect("/ppv", fan, events=("ppv:unlocked",))
        studio_b = await b.sockets.connect("/ppv", creator, events=("ppv:purchased",))
        checkout = await _buy_by_card(b.api, fan, kind="ppv_message", target_id=message_id)

        await Webhooks(a.api).pay_session(fake_stripe.sessions[str(checkout["session_id"])])

        for device in (on_a, on_b):
            (unlocked,) = await device.wait_for("ppv:unlocked")
            assert unlocked["message"]["body"] == "secret"
        await studio_b.wait_for("ppv:purchased")
        await on_b.assert_nothing("ppv:unlocked", within=0.3)
