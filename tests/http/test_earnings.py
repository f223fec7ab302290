"""Creator earnings (with the hold) and payouts through Stripe Connect, against the fake Stripe.

The fee is 20%. "Time passes" by moving a sale's completion back: the hold is measured from it.
"""

from __future__ import annotations

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
    stripe_settings,
)
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _sql(services: RunServices, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(services.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _age(services: RunServices, purchase_id: str, days: int) -> None:
    """The sale completed `days` ago."""
    await _sql(
        services,
        "update purchases set completed_at = now() - make_interval(days => $2) where id = $1",
        int(purchase_id),
        days,
    )


async def _buy(api: Api, fan: User, body: dict[str, Any]) -> dict[str, Any]:
    status, bought = await api.call("POST", "/api/v1/purchases", json=body, user=fan)
    assert status == 201, bought
    return dict(bought)


async def _earnings(api: Api, creator: User) -> dict[str, Any]:
    status, body = await api.call("GET", "/api/v1/creator/earnings", user=creator)
    assert status == 200, body
    return dict(body)


async def _sales(
    api: Api, sockets: Sockets, fake: FakeStripe
) -> tuple[User, User, dict[str, str], str]:
    """A paid message (wallet, 1,000), a tip (wallet, 500), content (card, 2,000)."""
    creator, fan = await api.register(role="creator"), await api.register()
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1500}, user=fan)
    message_id = await paid_message(sockets, creator, fan, 1000)
    ppv = await _buy(
        api, fan, {"kind": "ppv_message", "target_id": message_id, "pay_with": "wallet"}
    )
    tip = await _buy(
        api,
        fan,
        {"kind": "tip", "target_id": creator.id, "amount_cents": 500, "pay_with": "wallet"},
    )
    status, item = await api.call(
        "POST",
        "/api/v1/content",
        json={"title": "Set", "body": "all", "visibility": "ppv", "price_cents": 2000},
        user=creator,
    )
    assert status == 201
    checkout = await _buy(
        api, fan, {"kind": "content", "target_id": str(item["id"]), "pay_with": "card"}
    )
    pi = await Webhooks(api).pay_session(fake.sessions[checkout["session_id"]])
    ids = {"ppv": ppv["id"], "tip": tip["id"], "content": checkout["purchase_id"]}
    return creator, fan, ids, pi


async def test_earnings_stay_pending_through_the_hold_and_reversals_reduce_pending_first(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    creator, fan, ids, pi = await _sales(api, sockets, fake_stripe)
    await hooks.send(charge_refunded(pi, 500, [("re_e", 500, "succeeded")], amount=2000))

    earned = await _earnings(api, creator)
    assert earned == {
        "currency": "usd",
        "available_cents": 0,
        "pending_cents": 2400,
        "paid_out_cents": 0,
        "lifetime_cents": 2400,
        "refunded_cents": 500,
        "disputed_cents": 0,
        "hold_days": 7,
        "by_kind": {
            "ppv_message": {"gross_cents": 1000, "fee_cents": 200, "net_cents": 800, "count": 1},
            "content": {"gross_cents": 1500, "fee_cents": 300, "net_cents": 1200, "count": 1},
            "tip": {"gross_cents": 500, "fee_cents": 100, "net_cents": 400, "count": 1},
            "subscription": {"gross_cents": 0, "fee_cents": 0, "net_cents": 0, "count": 0},
        },
    }

    # Eight days on, the paid message is out of the hold; the content is still in it.
    await _age(services, ids["ppv"], 8)
    earned = await _earnings(api, creator)
    assert (earned["available_cents"], earned["pending_cents"]) == (800, 1600)

    # A dispute of the content, still in its hold, comes out of pending, not available.
    await hooks.send(dispute("created", pi, 1500))
    earned = await _earnings(api, creator)
    assert (earned["available_cents"], earned["pending_cents"]) == (800, 400)
    assert earned["disputed_cents"] == 1500 and earned["lifetime_cents"] == 1200

    status, page = await api.call("GET", "/api/v1/creator/earnings/entries?limit=3", user=creator)
    assert status == 200
    lines = page["items"]
    assert [(line["kind"], line["amount_cents"]) for line in lines] == [
        ("content", -1200),
        ("content", -400),
        ("content", 1600),
    ]
    assert all(line["fan_id"] == fan.id for line in lines)
    assert lines[0]["purchase_id"] == ids["content"] and lines[0]["available_at"] is not None
    status, rest = await api.call(
        "GET",
        f"/api/v1/creator/earnings/entries?limit=3&cursor={page['next_cursor']}",
        user=creator,
    )
    assert [(line["kind"], line["amount_cents"]) for line in rest["items"]] == [
        ("tip", 400),
        ("ppv_message", 800),
    ]
    assert rest["items"][1]["available_at"] is None
    assert rest["next_cursor"] is None
    status, _ = await api.call("GET", "/api/v1/creator/earnings", user=fan)
    assert status == 403
    status, _ = await api.call("GET", "/api/v1/creator/earnings/entries?cursor=x", user=creator)
    assert status == 400


async def test_a_creator_onboards_is_paid_by_transfer_and_a_reversal_gives_it_back(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, services: RunServices
) -> None:
    hooks = Webhooks(api)
    creator, _, ids, _ = await _sales(api, sockets, fake_stripe)
    for purchase_id in ids.values():
        await _age(services, purchase_id, 8)
    assert (await _earnings(api, creator))["available_cents"] == 2800

    status, refused = await api.call("POST", "/api/v1/creator/payouts", json={}, user=creator)
    assert status == 409 and refused["error"]["details"] == {"payouts_enabled": False}

    status, opened = await api.call("POST", "/api/v1/creator/payouts/account", user=creator)
    assert status == 201, opened
    assert opened["account_id"].startswith("acct_") and opened["payouts_enabled"] is False
    assert opened["onboarding_url"].startswith("https://connect.stripe.test/setup/")
    status, again = await api.call("POST", "/api/v1/creator/payouts/account", user=creator)
    assert again["account_id"] == opened["account_id"]
    assert again["onboarding_url"] != opened["onboarding_url"]
    (created,) = fake_stripe.requests_to("/v1/accounts")
    assert created["params"]["type"] == "express"
    assert created["params"]["metadata"] == {"bc_creator_id": creator.id}
    assert created["params"]["capabilities"] == {"transfers": {"requested": "true"}}
    assert created["idempotency_key"] == f"bc-connect-account-{creator.id}"
    links = fake_stripe.requests_to("/v1/account_links")
    assert [link["params"]["account"] for link in links] == [opened["account_id"]] * 2
    assert links[0]["params"]["type"] == "account_onboarding"

    status, refused = await api.call("POST", "/api/v1/creator/payouts", json={}, user=creator)
    assert status == 409, refused
    enabled = await hooks.send(
        event(
            "account.updated",
            {"id": opened["account_id"], "object": "account", "payouts_enabled": True},
        )
    )
    assert enabled["outcome"] == "payouts_enabled"

    for bad in ({"amount_cents": "300"}, {"amount_cents": True}, {"amount_cents": 0}):
        status, _ = await api.call("POST", "/api/v1/creator/payouts", json=bad, user=creator)
        assert status == 400, bad
    status, too_much = await api.call(
        "POST", "/api/v1/creator/payouts", json={"amount_cents": 2801}, user=creator
    )
    assert status == 409 and too_much["error"]["details"] == {"available_cents": 2800}

    status, first = await api.call(
        "POST", "/api/v1/creator/payouts", json={"amount_cents": 800}, user=creator
    )
    assert status == 201, first
    assert (first["amount_cents"], first["status"]) == (800, "paid")
    status, rest = await api.call("POST", "/api/v1/creator/payouts", json={}, user=creator)
    assert status == 201 and rest["amount_cents"] == 2000
    transfers = fake_stripe.requests_to("/v1/transfers")
    assert [
        (t["params"]["amount"], t["params"]["currency"], t["params"]["destination"])
        for t in transfers
    ] == [("800", "usd", opened["account_id"]), ("2000", "usd", opened["account_id"])]
    assert [t["idempotency_key"] for t in transfers] == [
        f"bc-payout-{first['id']}",
        f"bc-payout-{rest['id']}",
    ]
    assert transfers[0]["params"]["metadata"] == {
        "bc_payout_id": first["id"],
        "bc_creator_id": creator.id,
    }
    assert first["transfer_id"] in fake_stripe.transfers
    earned = await _earnings(api, creator)
    assert (earned["available_cents"], earned["paid_out_cents"]) == (0, 2800)
    assert earned["lifetime_cents"] == 2800

    reversal = {
        "id": rest["transfer_id"],
        "object": "transfer",
        "amount": 2000,
        "amount_reversed": 2000,
        "metadata": {"bc_payout_id": rest["id"]},
    }
    assert (await hooks.send(event("transfer.reversed", reversal)))["outcome"] == (
        "transfer_reversed"
    )
    again = await hooks.send(event("transfer.reversed", reversal))
    assert again["outcome"] == "transfer_reversal_already_applied"
    earned = await _earnings(api, creator)
    assert (earned["available_cents"], earned["paid_out_cents"]) == (2000, 800)

    fake_stripe.refuse_transfers = True
    status, failed = await api.call("POST", "/api/v1/creator/payouts", json={}, user=creator)
    assert status == 503 and failed["error"]["code"] == "unavailable"
    assert (await _earnings(api, creator))["available_cents"] == 2000

    status, listed = await api.call("GET", "/api/v1/creator/payouts", user=creator)
    assert status == 200
    assert [(p["amount_cents"], p["status"]) for p in listed["items"]] == [
        (2000, "failed"),
        (2000, "reversed"),
        (800, "paid"),
    ]
