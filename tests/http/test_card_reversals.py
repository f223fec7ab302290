"""Refunds and disputes from signed Stripe deliveries: exact to the cent in any order.

Every test ends with `backchannel ledger check` (the `balanced_ledger` fixture). The fee is 20%:
a 1,000-cent sale is 800 to the creator and 200 to the platform.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from tests.services import RunServices
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    charge_refunded,
    dispute,
    event,
    fake_stripe,
    paid_message,
    refund_updated,
    sign,
    stripe_settings,
)
from tests.support import Api, Socket, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")

PPV_EVENTS = ("ppv:unlocked", "ppv:locked", "ppv:purchase_updated", "wallet:balance")


@dataclass
class Sale:
    """A paid message bought by card, and everyone watching it."""

    creator: User
    fan: User
    message_id: str
    conversation_id: str
    purchase_id: str
    pi: str
    buyer: Socket
    studio: Socket
    chat: Socket
    inbox: Socket


async def _checkout(api: Api, fake: FakeStripe, fan: User, body: dict[str, Any]) -> dict[str, Any]:
    status, checkout = await api.call(
        "POST", "/api/v1/purchases", json={**body, "pay_with": "card"}, user=fan
    )
    assert status == 201, checkout
    return checkout


async def card_sale(
    api: Api, sockets: Sockets, fake: FakeStripe, *, price: int = 1000, pay: bool = True
) -> Sale:
    """A creator's paid message, a fan paying for it by card (Stripe confirming unless not)."""
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, price)
    buyer = await sockets.connect("/ppv", fan, events=PPV_EVENTS)
    studio = await sockets.connect("/ppv", creator, events=("ppv:purchase_updated",))
    inbox = await sockets.connect("/notifications", creator, events=("notification",))
    chat = await sockets.connect("/chat", fan)
    checkout = await _checkout(api, fake, fan, {"kind": "ppv_message", "target_id": message_id})
    session = fake.sessions[checkout["session_id"]]
    pi = f"pi_{checkout['purchase_id']}_{message_id}"
    if pay:
        await Webhooks(api).pay_session(session, payment_intent=pi)
        await buyer.wait_for("ppv:unlocked")
    opened = await chat.call("conversation:open", {"participant_ids": [creator.id]})
    return Sale(
        creator,
        fan,
        message_id,
        str(opened["data"]["id"]),
        str(checkout["purchase_id"]),
        pi,
        buyer,
        studio,
        chat,
        inbox,
    )


async def locked(api: Api, sale: Sale) -> bool:
    """The message's lock state, the same over `messages:sync` and the HTTP history."""
    synced = await sale.chat.call(
        "messages:sync", {"conversation_id": sale.conversation_id, "after_seq": 0}
    )
    (by_sync,) = [m for m in synced["data"]["items"] if m["id"] == sale.message_id]
    status, history = await api.call(
        "GET", f"/api/v1/conversations/{sale.conversation_id}/messages", user=sale.fan
    )
    assert status == 200
    (by_history,) = [m for m in history["items"] if m["id"] == sale.message_id]
    assert by_sync["locked"] == by_history["locked"]
    assert (by_sync["body"] is None) == by_sync["locked"]
    return bool(by_sync["locked"])


async def money(services: RunServices, purchase_id: str) -> dict[str, Any]:
    """A purchase's recorded reversals and what its ledger rows left in each account."""
    conn = await asyncpg.connect(services.database_url)
    try:
        row = await conn.fetchrow(
            "select status, refunded_cents, disputed_cents, dispute_status from purchases"
            " where id = $1",
            int(purchase_id),
        )
        legs = await conn.fetch(
            "select split_part(account, ':', 1) as kind, sum(amount_cents) as total"
            " from ledger_entries where purchase_id = $1 group by 1",
            int(purchase_id),
        )
    finally:
        await conn.close()
    assert row is not None
    totals = {leg["kind"]: int(leg["total"]) for leg in legs}
    return {
        **dict(row),
        "earnings": totals.get("earnings", 0),
        "fee": totals.get("platform", 0),
        "clearing": totals.get("stripe", 0),
    }


def kept(refunded: int, disputed: int = 0, **extra: Any) -> dict[str, Any]:
    """What a 1,000-cent sale should show after `refunded` + `disputed` were taken back."""
    back = refunded + disputed
    fee = 200 - 200 * back // 1000
    return {
        "refunded_cents": refunded,
        "disputed_cents": disputed,
        "earnings": 1000 - back - fee,
        "fee": fee,
        "clearing": back - 1000,
        "status": extra.get("status", "completed" if back < 1000 else "refunded"),
        "dispute_status": extra.get("dispute_status"),
    }


async def test_two_partial_refunds_reverse_exactly_and_relock_only_when_whole(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)

    first = await hooks.send(charge_refunded(sale.pi, 100, [("re_1", 100, "succeeded")]))

    assert first["outcome"] == "refund_reversed"
    assert await money(services, sale.purchase_id) == kept(100)
    assert not await locked(api, sale)
    (told,) = await sale.buyer.wait_for("ppv:purchase_updated")
    assert told == {
        "purchase_id": sale.purchase_id,
        "kind": "ppv_message",
        "amount_cents": 1000,
        "refunded_cents": 100,
        "disputed_cents": 0,
        "currency": "usd",
        "status": "completed",
    }
    assert (await sale.studio.wait_for("ppv:purchase_updated"))[0] == told
    notes = await sale.inbox.wait_for("notification", 2)
    assert notes[-1]["type"] == "purchase.updated"
    assert notes[-1]["body"] == "1.00 USD of a 10.00 USD sale was taken back"
    await sale.buyer.assert_nothing("ppv:locked")

    second = await hooks.send(
        charge_refunded(sale.pi, 1000, [("re_1", 100, "succeeded"), ("re_2", 900, "succeeded")])
    )

    assert second["outcome"] == "refund_reversed"
    assert await money(services, sale.purchase_id) == kept(1000)
    (relocked,) = await sale.buyer.wait_for("ppv:locked")
    assert relocked["message_id"] == sale.message_id and relocked["reason"] == "refund"
    assert relocked["message"]["locked"] is True
    assert await locked(api, sale)


async def test_three_partial_refunds_reversed_and_duplicated_end_at_the_same_cent(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    # Only running totals (no Refund objects listed, as current API versions send them).
    totals = [333, 666, 1000]
    deliveries = [charge_refunded(sale.pi, total) for total in totals]

    newest = await hooks.send(deliveries[2])
    assert newest["outcome"] == "refund_reversed"
    assert await money(services, sale.purchase_id) == kept(1000)
    for late in (deliveries[1], deliveries[0]):
        assert (await hooks.send(late))["outcome"] == "refund_already_applied"
    for replay in deliveries:
        assert (await hooks.send(replay))["duplicate"] is True
    # The same totals again under new event ids (Stripe resending) change nothing either.
    for total in (666, 333, 1000):
        again = await hooks.send(charge_refunded(sale.pi, total))
        assert again["outcome"] == "refund_already_applied"

    assert await money(services, sale.purchase_id) == kept(1000)
    assert await locked(api, sale)
    assert len(await sale.buyer.wait_for("ppv:locked")) == 1


async def test_three_partial_refunds_in_order_give_back_the_fee_by_floor_of_the_total(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    seen: list[tuple[str, int, str]] = []
    for n, (cents, total) in enumerate([(333, 333), (333, 666), (334, 1000)], start=1):
        seen.append((f"re_{n}", cents, "succeeded"))
        await hooks.send(charge_refunded(sale.pi, total, list(seen)))
        # floor(200 * 333 / 1000) = 66, then 133, then 200: the pieces always add up.
        assert await money(services, sale.purchase_id) == kept(total)
    assert await locked(api, sale)


async def test_a_refund_that_fails_after_being_applied_gives_everything_back(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(charge_refunded(sale.pi, 1000, [("re_f", 1000, "succeeded")]))
    await sale.buyer.wait_for("ppv:locked")
    assert await locked(api, sale)

    failed = await hooks.send(refund_updated(sale.pi, "re_f", 1000, "failed"))

    assert failed["outcome"] == "refund_reinstated"
    assert await money(services, sale.purchase_id) == kept(0)
    unlocked = await sale.buyer.wait_for("ppv:unlocked", 2)
    assert unlocked[-1]["message"]["body"] == "secret"
    assert not await locked(api, sale)
    # The same charge.refunded replayed later (a new event id) cannot resurrect the refund.
    again = await hooks.send(charge_refunded(sale.pi, 1000, [("re_f", 1000, "succeeded")]))
    assert again["outcome"] == "refund_already_applied"
    assert await money(services, sale.purchase_id) == kept(0)


async def test_a_canceled_refund_seen_before_its_charge_event_never_applies(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(refund_updated(sale.pi, "re_c", 400, "canceled", type_="refund.updated"))
    await hooks.send(charge_refunded(sale.pi, 400, [("re_c", 400, "pending")]))
    assert await money(services, sale.purchase_id) == kept(0)
    assert not await locked(api, sale)


async def test_a_dispute_withholds_then_won_reinstates_live(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)

    created = await hooks.send(dispute("created", sale.pi, 1000))
    assert created["outcome"] == "dispute_reversed"
    assert await money(services, sale.purchase_id) == kept(
        0, 1000, status="disputed", dispute_status="withheld"
    )
    (relocked,) = await sale.buyer.wait_for("ppv:locked")
    assert relocked["reason"] == "dispute"
    assert await locked(api, sale)
    withdrawn = await hooks.send(dispute("funds_withdrawn", sale.pi, 1000))
    assert withdrawn["outcome"] == "dispute_already_applied"

    reinstated = await hooks.send(dispute("funds_reinstated", sale.pi, 1000))
    assert reinstated["outcome"] == "dispute_reinstated"
    closed = await hooks.send(dispute("closed", sale.pi, 1000, status="won"))
    assert closed["outcome"] == "dispute_already_applied"

    assert await money(services, sale.purchase_id) == kept(0, dispute_status="reinstated")
    unlocked = await sale.buyer.wait_for("ppv:unlocked", 2)
    assert unlocked[-1]["message_id"] == sale.message_id
    assert not await locked(api, sale)


async def test_a_dispute_lost_keeps_the_reversal_as_final(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(dispute("created", sale.pi, 1000))

    lost = await hooks.send(dispute("closed", sale.pi, 1000, status="lost"))
    # A late funds_reinstated for the same dispute cannot undo a loss.
    late = await hooks.send(dispute("funds_reinstated", sale.pi, 1000))

    assert lost["outcome"] == "dispute_recorded"
    assert late["outcome"] == "dispute_already_applied"
    assert await money(services, sale.purchase_id) == kept(
        0, 1000, status="disputed", dispute_status="lost"
    )
    assert await locked(api, sale)
    await sale.buyer.assert_nothing("ppv:unlocked")
    assert len(sale.buyer.received["ppv:unlocked"]) == 1


async def test_a_dispute_before_the_payments_own_event_unlocks_nothing_until_won(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe, pay=False)
    early = await hooks.send(dispute("created", sale.pi, 1000))
    assert early["outcome"] == "reversal_recorded_before_payment"

    session = fake_stripe.last_session()
    await hooks.pay_session(session, payment_intent=sale.pi)

    assert await money(services, sale.purchase_id) == kept(
        0, 1000, status="disputed", dispute_status="withheld"
    )
    assert await locked(api, sale)
    await sale.buyer.assert_nothing("ppv:unlocked")

    await hooks.send(dispute("closed", sale.pi, 1000, status="won"))

    assert await money(services, sale.purchase_id) == kept(0, dispute_status="reinstated")
    (unlocked,) = await sale.buyer.wait_for("ppv:unlocked")
    assert unlocked["message"]["body"] == "secret"
    assert not await locked(api, sale)


async def test_a_refund_after_a_won_dispute_reverses_and_relocks(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(dispute("created", sale.pi, 1000))
    await hooks.send(dispute("closed", sale.pi, 1000, status="won"))
    assert not await locked(api, sale)

    refund = await hooks.send(charge_refunded(sale.pi, 1000, [("re_after", 1000, "succeeded")]))

    assert refund["outcome"] == "refund_reversed"
    assert await money(services, sale.purchase_id) == kept(1000, dispute_status="reinstated")
    assert await locked(api, sale)
    assert len(await sale.buyer.wait_for("ppv:locked", 2)) == 2


async def test_a_partial_refund_then_a_dispute_of_the_rest_is_wholly_reversed(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(charge_refunded(sale.pi, 300, [("re_p", 300, "succeeded")]))
    await hooks.send(dispute("created", sale.pi, 700))
    assert await money(services, sale.purchase_id) == kept(
        300, 700, status="disputed", dispute_status="withheld"
    )
    assert await locked(api, sale)


async def test_the_end_state_depends_only_on_the_set_of_events_not_their_order(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)

    def events(pi: str) -> list[dict[str, Any]]:
        return [
            charge_refunded(pi, 200, [("re_a_" + pi, 200, "succeeded")]),
            charge_refunded(
                pi, 500, [("re_a_" + pi, 200, "succeeded"), ("re_b_" + pi, 300, "succeeded")]
            ),
            refund_updated(pi, "re_a_" + pi, 200, "failed"),
            dispute("created", pi, 500),
            dispute("closed", pi, 500, status="lost"),
        ]

    orders = list(itertools.permutations(range(5)))[::23][:6]
    ends = []
    for order in orders:
        sale = await card_sale(api, sockets, fake_stripe)
        batch = events(sale.pi)
        for index in order:
            await hooks.send(batch[index])
        ends.append((await money(services, sale.purchase_id), await locked(api, sale)))
    # 300 refunded (the 200 failed), 500 withheld and lost: 800 of 1,000 reversed, still owned.
    assert ends[0] == (kept(300, 500, dispute_status="lost"), False)
    assert all(end == ends[0] for end in ends), ends


async def test_content_disputed_locks_and_won_unlocks_live(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    creator, fan = await api.register(role="creator"), await api.register()
    status, item = await api.call(
        "POST",
        "/api/v1/content",
        json={"title": "Set", "body": "all of it", "visibility": "ppv", "price_cents": 1000},
        user=creator,
    )
    assert status == 201, item
    buyer = await sockets.connect("/ppv", fan, events=("content:unlocked", "content:locked"))
    checkout = await _checkout(
        api, fake_stripe, fan, {"kind": "content", "target_id": str(item["id"])}
    )
    pi = await hooks.pay_session(fake_stripe.sessions[checkout["session_id"]])
    await buyer.wait_for("content:unlocked")
    assert (await api.call("GET", f"/api/v1/content/{item['id']}", user=fan))[0] == 200

    await hooks.send(dispute("created", pi, 1000))
    (gone,) = await buyer.wait_for("content:locked")
    assert gone == {"content_id": str(item["id"]), "reason": "dispute"}
    assert (await api.call("GET", f"/api/v1/content/{item['id']}", user=fan))[0] == 402

    await hooks.send(dispute("funds_reinstated", pi, 1000))
    assert len(await buyer.wait_for("content:unlocked", 2)) == 2
    assert (await api.call("GET", f"/api/v1/content/{item['id']}", user=fan))[0] == 200
    assert await money(services, str(checkout["purchase_id"])) == kept(
        0, dispute_status="reinstated"
    )


async def test_a_partly_refunded_wallet_top_up_takes_back_only_that_part(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    hooks = Webhooks(api)
    fan = await api.register()
    ppv = await sockets.connect("/ppv", fan, events=("wallet:balance", "ppv:purchase_updated"))
    checkout = await _checkout(
        api, fake_stripe, fan, {"kind": "wallet_topup", "amount_cents": 2500}
    )
    pi = await hooks.pay_session(fake_stripe.sessions[checkout["session_id"]])
    await hooks.send(charge_refunded(pi, 1000, [("re_t", 1000, "succeeded")], amount=2500))
    await hooks.send(charge_refunded(pi, 1000, [("re_t", 1000, "succeeded")], amount=2500))

    balances = await ppv.wait_for("wallet:balance", 2)
    assert [(b["balance_cents"], b["version"]) for b in balances] == [(2500, 1), (1500, 2)]
    (updated,) = await ppv.wait_for("ppv:purchase_updated")
    assert updated["refunded_cents"] == 1000 and updated["status"] == "completed"
    _, wallet = await api.call("GET", "/api/v1/wallet", user=fan)
    assert (wallet["balance_cents"], wallet["version"]) == (1500, 2)


async def test_a_subscription_invoice_refunded_in_part_reverses_that_part_only(
    api: Api, services: RunServices
) -> None:
    hooks = Webhooks(api)
    fan, creator = await api.register(), await api.register(role="creator")
    sub_id = await hooks.subscribe(fan, creator)
    metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
    await hooks.send(
        event(
            "invoice.paid",
            {
                "id": "in_part",
                "object": "invoice",
                "amount_paid": 1000,
                "currency": "usd",
                "parent": {"subscription_details": {"subscription": sub_id, "metadata": metadata}},
                "payments": {"data": [{"payment": {"payment_intent": "pi_in_part"}}]},
                "lines": {"data": [{"period": {"end": int(time.time()) + 30 * 86400}}]},
            },
        )
    )
    conn = await asyncpg.connect(services.database_url)
    try:
        purchase_id = str(await conn.fetchval("select id from purchases"))
    finally:
        await conn.close()

    refund = await hooks.send(charge_refunded("pi_in_part", 250, [("re_in", 250, "succeeded")]))

    assert refund["outcome"] == "refund_reversed"
    assert await money(services, purchase_id) == kept(250)
    _, mine = await api.call("GET", "/api/v1/subscriptions", user=fan)
    assert mine["items"][0]["status"] == "active"


async def test_a_refund_failing_after_the_fan_bought_again_credits_their_wallet(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    await hooks.send(charge_refunded(sale.pi, 1000, [("re_x", 1000, "succeeded")]))
    await sale.buyer.wait_for("ppv:locked")
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=sale.fan)
    again = await sale.buyer.call("ppv:unlock", {"message_id": sale.message_id})
    assert again["ok"], again

    failed = await hooks.send(refund_updated(sale.pi, "re_x", 1000, "failed"))

    assert failed["outcome"] == "refund_reinstated"
    state = await money(services, sale.purchase_id)
    assert (state["status"], state["refunded_cents"], state["clearing"]) == ("credited", 0, -1000)
    assert (state["earnings"], state["fee"]) == (0, 0)
    _, wallet = await api.call("GET", "/api/v1/wallet", user=sale.fan)
    assert wallet["balance_cents"] == 1000
    assert not await locked(api, sale)


async def test_absurd_amounts_and_nul_ids_in_reversal_events_change_nothing(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    sale = await card_sale(api, sockets, fake_stripe)
    # Integers beyond 64 bits never reach the domain: the one parsing layer answers 400.
    too_wide = [
        charge_refunded(sale.pi, 10**30, [("re_big", 10**30, "succeeded")]),
        dispute("created", sale.pi, 10**25),
        event("transfer.reversed", {"id": "tr_x", "amount_reversed": 10**40}),
    ]
    for delivery in too_wide:
        body = json.dumps(delivery).encode()
        status, answer = await hooks.post_raw(body, sign(body))
        assert status == 400 and answer["error"]["code"] == "invalid", answer
    # What parses but makes no sense (negative amounts, ids holding NUL) is ignored.
    for delivery in [
        charge_refunded(sale.pi, -5, [("re_neg", -5, "succeeded")]),
        refund_updated(sale.pi, "re_\u0000nul", 100, "succeeded"),
        dispute("created", "pi_\u0000", 100),
        event("transfer.reversed", {"id": "tr_\u0000", "amount_reversed": 100}),
    ]:
        body = json.dumps(delivery).encode()
        status, answer = await hooks.post_raw(body, sign(body))
        assert status in (200, 400), answer
    state = await money(services, sale.purchase_id)
    assert state == kept(0)
