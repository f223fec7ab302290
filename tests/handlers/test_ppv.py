"""`/ppv`: unlocking paid messages from the wallet, broadcasts, the wallet itself."""

from __future__ import annotations

import asyncio
import json

import pytest

from backchannel.server.settings import Settings
from tests.media_support import photo_with_gps, upload
from tests.services import RunServices
from tests.stripe_support import (
    Webhooks,
    balanced_ledger,
    fake_stripe,
    paid_message,
    send_paid,
    stripe_settings,
)
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def topup(api: Api, user: User, cents: int) -> None:
    status, body = await api.call(
        "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": cents}, user=user
    )
    assert status == 200, body


async def test_a_fan_unlocks_a_paid_message_from_the_wallet_and_every_device_hears(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 500)
    await topup(api, fan, 1200)
    phone = await sockets.connect("/ppv", fan, events=("ppv:unlocked", "wallet:balance"))
    laptop = await sockets.connect("/ppv", fan, events=("ppv:unlocked",))
    studio = await sockets.connect("/ppv", creator, events=("ppv:purchased",))

    ack = await phone.call("ppv:unlock", {"message_id": message_id, "pay_with": "wallet"})

    assert ack["ok"], ack
    assert ack["data"]["body"] == "secret" and ack["data"]["locked"] is False
    for device in (phone, laptop):
        (unlocked,) = await device.wait_for("ppv:unlocked")
        assert unlocked["message_id"] == message_id
        assert unlocked["message"]["body"] == "secret"
        assert unlocked["message"]["media"] == []
    (sale,) = await studio.wait_for("ppv:purchased")
    assert sale == {
        "message_id": message_id,
        "kind": "ppv_message",
        "buyer_id": fan.id,
        "amount_cents": 500,
        "currency": "usd",
        "purchase_id": sale["purchase_id"],
    }
    balances = await phone.wait_for("wallet:balance")
    assert balances[-1] == {"balance_cents": 700, "currency": "usd", "version": 2}
    wallet = (await phone.call("wallet:get"))["data"]
    assert wallet == {"balance_cents": 700, "currency": "usd", "version": 2}


async def test_buying_what_you_own_is_a_conflict_and_charges_nothing(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 300)
    await topup(api, fan, 1000)
    ppv = await sockets.connect("/ppv", fan)
    assert (await ppv.call("ppv:unlock", {"message_id": message_id}))["ok"]

    again = await ppv.call("ppv:unlock", {"message_id": message_id})

    assert again["error"]["code"] == "conflict"
    assert (await ppv.call("wallet:get"))["data"]["balance_cents"] == 700


async def test_not_enough_balance_asks_for_payment_and_says_how_to_pay_by_card(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 900)
    await topup(api, fan, 100)
    ppv = await sockets.connect("/ppv", fan)

    ack = await ppv.call("ppv:unlock", {"message_id": message_id})

    error = ack["error"]
    assert error["code"] == "payment_required"
    assert error["details"]["price_cents"] == 900
    assert error["details"]["currency"] == "usd"
    assert error["details"]["balance_cents"] == 100
    assert error["details"]["pay_with"] == ["card"]
    assert error["details"]["card"]["body"] == {
        "kind": "ppv_message",
        "target_id": message_id,
        "pay_with": "card",
    }
    assert (await ppv.call("wallet:get"))["data"]["balance_cents"] == 100


async def test_twenty_concurrent_unlocks_against_a_balance_for_three_unlock_exactly_three(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    ids = await send_paid(sockets, creator, fan, 250, count=20)
    await topup(api, fan, 800)
    ppv = await sockets.connect("/ppv", fan)

    acks = await asyncio.gather(*(ppv.call("ppv:unlock", {"message_id": i}) for i in ids))

    assert sum(1 for ack in acks if ack["ok"]) == 3
    assert {ack["error"]["code"] for ack in acks if not ack["ok"]} == {"payment_required"}
    assert (await ppv.call("wallet:get"))["data"]["balance_cents"] == 50


async def test_the_same_message_unlocked_concurrently_is_charged_once(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    message_id = await paid_message(sockets, creator, fan, 200)
    await topup(api, fan, 1000)
    ppv = await sockets.connect("/ppv", fan)

    acks = await asyncio.gather(
        *(ppv.call("ppv:unlock", {"message_id": message_id}) for _ in range(8))
    )

    assert sum(1 for ack in acks if ack["ok"]) == 1
    assert {ack["error"]["code"] for ack in acks if not ack["ok"]} == {"conflict"}
    assert (await ppv.call("wallet:get"))["data"]["balance_cents"] == 800


async def test_strangers_senders_and_free_messages_cannot_be_bought(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan, stranger = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    message_id = await paid_message(sockets, creator, fan, 200)
    await topup(api, stranger, 1000)
    assert (
        await (await sockets.connect("/ppv", stranger)).call(
            "ppv:unlock", {"message_id": message_id}
        )
    )["error"]["code"] == "not_found"
    assert (
        await (await sockets.connect("/ppv", creator)).call(
            "ppv:unlock", {"message_id": message_id}
        )
    )["error"]["code"] == "conflict"
    fan_ppv = await sockets.connect("/ppv", fan)
    assert (await fan_ppv.call("ppv:unlock", {"message_id": "nope"}))["error"]["code"] == (
        "not_found"
    )
    assert (await fan_ppv.call("ppv:unlock", {}))["error"]["code"] == "invalid"


async def test_a_broadcast_reaches_every_subscriber_once_locked_and_is_idempotent(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(3)]
    outsider = await api.register()
    hooks = Webhooks(api)
    for fan in fans[:2]:
        await hooks.subscribe(fan, creator)
    chats = [await sockets.connect("/chat", fan, events=("message:broadcast",)) for fan in fans]
    outsider_chat = await sockets.connect("/chat", outsider, events=("message:broadcast",))
    studio = await sockets.connect("/ppv", creator)
    photo = await upload(api, creator, photo_with_gps(), "image/jpeg")
    request = {
        "client_id": "b-1",
        "body": "full set",
        "price_cents": 700,
        "preview_text": "new photos",
        "media": [{"media_id": photo["media_id"]}],
    }

    ack = await studio.call("ppv:broadcast", request)
    retry = await studio.call("ppv:broadcast", request)

    assert ack["ok"], ack
    assert ack["data"]["recipients"] == 2
    assert retry["data"] == ack["data"]
    for chat in chats[:2]:
        (live,) = await chat.wait_for("message:broadcast")
        assert live["locked"] is True and live["body"] is None and live["media"] == []
        assert live["preview"]["text"] == "new photos" and live["preview"]["media_count"] == 1
        (shown,) = live["preview"]["media"]
        assert shown["kind"] == "image" and "/preview?" in shown["preview_url"]
        assert "/full?" not in json.dumps(live)
        assert live["sender_id"] == creator.id and live["price_cents"] == 700
    await chats[2].assert_nothing("message:broadcast")
    await outsider_chat.assert_nothing("message:broadcast")
    rows = await _broadcast_rows(services.database_url, ack["data"]["broadcast_id"])
    assert sorted(rows) == sorted((fan.id, 1) for fan in fans[:2])
    assert (
        await (await sockets.connect("/ppv", fans[2])).call(
            "ppv:broadcast", {**request, "client_id": "x"}
        )
    )["error"]["code"] == "forbidden"


async def _broadcast_rows(database_url: str, broadcast_id: str) -> list[tuple[str, int]]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select cm.user_id, m.seq from messages m join conversation_members cm"
            " on cm.conversation_id = m.conversation_id and cm.user_id <> m.sender_id"
            " where m.broadcast_id = $1",
            int(broadcast_id),
        )
        return [(row["user_id"], row["seq"]) for row in rows]
    finally:
        await conn.close()


async def test_a_broadcast_to_hundreds_of_subscribers_is_one_set_based_write(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    import asyncpg

    creator = await api.register(role="creator")
    conn = await asyncpg.connect(services.database_url)
    try:
        # Subscribers made directly: registering 300 users through argon2 would take minutes.
        await conn.execute(
            "insert into users (id, display_name) select 'bulk-' || n, 'Fan ' || n"
            " from generate_series(1, 300) n"
        )
        await conn.execute(
            "insert into subscriptions (fan_id, creator_id, status)"
            " select 'bulk-' || n, $1, 'active' from generate_series(1, 300) n",
            creator.id,
        )
        studio = await sockets.connect("/ppv", creator)
        ack = await studio.call(
            "ppv:broadcast", {"client_id": "bulk", "body": "hi all", "price_cents": 500}
        )
        assert ack["ok"], ack
        assert ack["data"]["recipients"] == 300
        counts = await conn.fetchrow(
            "select count(*) as messages, count(distinct conversation_id) as conversations,"
            " max(seq) as top from messages where broadcast_id = $1",
            int(ack["data"]["broadcast_id"]),
        )
        assert dict(counts) == {"messages": 300, "conversations": 300, "top": 1}
        members = await conn.fetchval(
            "select count(*) from conversation_members where user_id like 'bulk-%'"
        )
        assert members == 300
    finally:
        await conn.close()


async def test_broadcasts_and_checkouts_are_rate_limited_but_retries_are_free(
    settings: Settings,
) -> None:
    from tests.chat_support import node

    async with node(settings, broadcast_rate_limit="2/60s:2", checkout_rate_limit="1/60s:1") as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        studio = await n.sockets.connect("/ppv", creator)
        first = {"client_id": "one", "body": "x", "price_cents": 100}
        assert (await studio.call("ppv:broadcast", first))["ok"]
        second = await studio.call("ppv:broadcast", {**first, "client_id": "two"})
        assert second["ok"], second
        assert (await studio.call("ppv:broadcast", first))["ok"]
        limited = await studio.call("ppv:broadcast", {**first, "client_id": "three"})
        assert limited["error"]["code"] == "rate_limited"
        assert limited["error"]["details"]["retry_after_ms"] > 0
        body = {"kind": "wallet_topup", "amount_cents": 500, "pay_with": "card"}
        assert (await n.api.call("POST", "/api/v1/purchases", json=body, user=fan))[0] == 201
        assert (await n.api.call("POST", "/api/v1/purchases", json=body, user=fan))[0] == 429


def latest_balance(events: list[dict[str, int]]) -> int:
    """What a client shows if it keeps the highest `version` seen and ignores older events."""
    shown, version = 0, -1
    for item in events:
        if item["version"] > version:
            shown, version = item["balance_cents"], item["version"]
    return shown


async def test_concurrent_purchases_send_balances_whose_versions_order_them(
    api: Api, sockets: Sockets
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    first, second = await send_paid(sockets, creator, fan, 300, count=2)
    await topup(api, fan, 1000)
    phone = await sockets.connect("/ppv", fan, events=("wallet:balance",))
    buyer = await sockets.connect("/ppv", fan)

    acks = await asyncio.gather(
        *(buyer.call("ppv:unlock", {"message_id": m}) for m in (first, second))
    )

    assert all(ack["ok"] for ack in acks), acks
    arrived = await phone.wait_for("wallet:balance", 2)
    # The top-up was version 1; the two purchases are 2 and 3, whichever committed first.
    assert sorted((b["version"], b["balance_cents"]) for b in arrived) == [(2, 700), (3, 400)]
    wallet = (await buyer.call("wallet:get"))["data"]
    _, statement = await api.call("GET", "/api/v1/wallet", user=fan)
    assert wallet == {"balance_cents": 400, "currency": "usd", "version": 3}
    assert (statement["balance_cents"], statement["version"]) == (400, 3)
    # Whatever order the events arrive in, keeping the highest version shows the truth.
    assert latest_balance(arrived) == latest_balance(arrived[::-1]) == 400
    # ...while "the last event wins" shows a stale 700 in one of the two orders.
    assert {arrived[-1]["balance_cents"], arrived[::-1][-1]["balance_cents"]} == {700, 400}
