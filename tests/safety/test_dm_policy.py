"""Who may message a creator: `dm_policy` (subscribers by default, everyone, paid, nobody),
and fan-to-fan DMs off unless configured. These tests run with the production defaults."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from backchannel.server.settings import Settings
from tests.relations import subscribe
from tests.services import RunServices
from tests.stripe_support import ledger_problems
from tests.support import Api, Socket, Sockets, User


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The production rules (the shared test settings relax them), and dev top-ups."""
    return settings.model_copy(
        update={
            "fan_to_fan_dms": False,
            "creator_dm_policy_default": "subscribers",
            "dev_topup": True,
        }
    )


def send(conversation_id: str, body: str = "hi", client_id: str | None = None) -> dict[str, Any]:
    """A `message:send` payload."""
    return {
        "conversation_id": conversation_id,
        "client_id": client_id or uuid.uuid4().hex,
        "body": body,
    }


async def set_policy(api: Api, creator: User, **fields: Any) -> dict[str, Any]:
    """The creator changes their DM rule; returns the profile."""
    status, body = await api.call("PATCH", "/api/v1/profiles/me", json=fields, user=creator)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def open_with(chat: Socket, other: User) -> Any:
    """`conversation:open` of the DM with `other`."""
    return await chat.call("conversation:open", {"participant_ids": [other.id]})


async def test_only_subscribers_may_message_a_creator_by_default(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    status, profile = await api.call("GET", f"/api/v1/profiles/{creator.id}", user=fan)
    assert status == 200 and profile["dm_policy"] == "subscribers"
    chat = await sockets.connect("/chat", fan)
    ack = await open_with(chat, creator)
    assert ack["error"]["code"] == "payment_required"
    details = ack["error"]["details"]
    assert details["reason"] == "subscribers_only"
    assert details["subscribe"] == {
        "method": "POST",
        "path": f"/api/v1/creators/{creator.id}/subscription",
    }

    # The creator may always reach a subscriber; the subscriber may answer.
    await subscribe(services.database_url, fan.id, creator.id)
    creator_chat = await sockets.connect("/chat", creator)
    dm = (await open_with(creator_chat, fan))["data"]["id"]
    assert (await creator_chat.call("message:send", send(dm, "thanks for subscribing")))["ok"]
    assert (await chat.call("message:send", send(dm, "hello!")))["ok"]

    # A lapsed subscriber can no longer write into the conversation they have.
    await subscribe(services.database_url, fan.id, creator.id, status="canceled")
    ack = await chat.call("message:send", send(dm))
    assert ack["error"]["details"]["reason"] == "subscribers_only"


async def test_nobody_refuses_everyone_but_the_creator_still_reaches_subscribers(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    await subscribe(services.database_url, fan.id, creator.id)
    assert (await set_policy(api, creator, dm_policy="nobody"))["dm_policy"] == "nobody"
    chat = await sockets.connect("/chat", fan)
    ack = await open_with(chat, creator)
    assert ack["error"]["code"] == "forbidden"
    assert ack["error"]["details"] == {"reason": "dm_policy", "dm_policy": "nobody"}
    creator_chat = await sockets.connect("/chat", creator)
    dm = (await open_with(creator_chat, fan))["data"]["id"]
    assert (await creator_chat.call("message:send", send(dm, "news for you")))["ok"]
    assert (await chat.call("message:send", send(dm)))["error"]["code"] == "forbidden"

    await set_policy(api, creator, dm_policy="everyone")
    stranger = await api.register()
    stranger_chat = await sockets.connect("/chat", stranger)
    assert (await open_with(stranger_chat, creator))["ok"]


async def test_fans_do_not_message_fans(api: Api, sockets: Sockets) -> None:
    alice, bob = await api.register(), await api.register()
    chat = await sockets.connect("/chat", alice)
    ack = await open_with(chat, bob)
    assert ack["error"]["code"] == "forbidden"
    assert ack["error"]["details"] == {"reason": "fan_to_fan_dms"}


async def test_a_paid_dm_costs_each_message_from_the_wallet_and_the_ledger_holds(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    profile = await set_policy(api, creator, dm_policy="paid", dm_price_cents=200)
    assert profile["dm_policy"] == "paid" and profile["dm_price_cents"] == 200
    chat = await sockets.connect("/chat", fan)
    dm = (await open_with(chat, creator))["data"]["id"]  # opening is free

    ack = await chat.call("message:send", send(dm))
    assert ack["error"]["code"] == "payment_required"
    details = ack["error"]["details"]
    assert details["reason"] == "dm_price" and details["price_cents"] == 200
    assert details["balance_cents"] == 0
    assert details["wallet_topup"]["body"]["kind"] == "wallet_topup"
    status, _ = await api.call(
        "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 500}, user=fan
    )
    assert status == 200
    first = await chat.call("message:send", send(dm, "one", client_id="c1"))
    assert first["ok"], first
    again = await chat.call("message:send", send(dm, "one", client_id="c1"))
    assert again["data"]["id"] == first["data"]["id"]  # a retry is not charged twice
    assert (await chat.call("message:send", send(dm, "two")))["ok"]
    short = await chat.call("message:send", send(dm, "three"))
    assert short["error"]["details"]["balance_cents"] == 100
    status, wallet = await api.call("GET", "/api/v1/wallet", user=fan)
    assert wallet["balance_cents"] == 100
    ack = await chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    assert [m["seq"] for m in ack["data"]["items"]] == [1, 2]  # the refused one left no gap

    # The creator replies for free, and earned both messages as tips (less the fee).
    creator_chat = await sockets.connect("/chat", creator)
    assert (await creator_chat.call("message:send", send(dm, "thanks")))["ok"]
    status, earned = await api.call("GET", "/api/v1/creator/earnings", user=creator)
    assert status == 200, earned
    assert earned["lifetime_cents"] == 2 * 160  # two messages of 200, less the 20% fee
    assert await ledger_problems(services.database_url) == []


async def test_only_creators_set_a_dm_policy_and_paid_needs_a_price(api: Api) -> None:
    fan, creator = await api.register(), await api.register(role="creator")
    status, body = await api.call(
        "PATCH", "/api/v1/profiles/me", json={"dm_policy": "everyone"}, user=fan
    )
    assert status == 403
    status, body = await api.call(
        "PATCH", "/api/v1/profiles/me", json={"dm_policy": "paid"}, user=creator
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "dm_price_cents"
    status, body = await api.call(
        "PATCH", "/api/v1/profiles/me", json={"dm_policy": "sometimes"}, user=creator
    )
    assert status == 400
