"""Edit and unsend: the sender edits within the window and takes messages back; a buyer keeps
a paid message they unlocked; moderators delete anything; seqs stay gap-free everywhere."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import roles
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm, sent
from tests.support import Api, Sockets, User


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Dev top-ups on, so fans can pay from their wallet."""
    return settings.model_copy(update={"dev_topup": True})


def send(conversation_id: str, body: str, **extra: Any) -> dict[str, Any]:
    """A `message:send` payload."""
    return {
        "conversation_id": conversation_id,
        "client_id": uuid.uuid4().hex,
        "body": body,
        **extra,
    }


async def make_moderator(server: TestServer, user: User) -> None:
    """Give `user` the moderator role, as `backchannel user grant` does."""
    await roles.grant_by_email(server.app[RUNTIME].db, user.email, "moderator")


async def test_a_sender_edits_and_everyone_else_hears(api: Api, sockets: Sockets) -> None:
    alice, bob = await api.register(), await api.register()
    dm = await open_dm(sockets, alice, bob)
    alice_chat = await sockets.connect("/chat", alice, events=("message:updated",))
    alice_phone = await sockets.connect("/chat", alice, events=("message:updated",))
    bob_chat = await sockets.connect("/chat", bob, events=("message:updated",))
    message = sent(await alice_chat.call("message:send", send(dm, "helo")))

    ack = await alice_chat.call("message:edit", {"message_id": message["id"], "body": "hello"})
    assert ack["ok"], ack
    assert ack["data"]["body"] == "hello" and ack["data"]["edited_at"] is not None
    assert ack["data"]["seq"] == message["seq"]
    [updated] = await bob_chat.wait_for("message:updated")
    assert updated["body"] == "hello" and updated["id"] == message["id"]
    await alice_phone.wait_for("message:updated")
    await alice_chat.assert_nothing("message:updated")  # the editing socket has its ack

    ack = await bob_chat.call("message:edit", {"message_id": message["id"], "body": "mine now"})
    assert ack["error"]["code"] == "forbidden"
    ack = await bob_chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    assert ack["data"]["items"][0]["body"] == "hello"


async def test_the_edit_window_closes(settings: Settings) -> None:
    async with node(settings, message_edit_window_seconds=0) as at:
        alice, bob = await at.api.register(), await at.api.register()
        dm = await open_dm(at.sockets, alice, bob)
        chat = await at.sockets.connect("/chat", alice)
        message = sent(await chat.call("message:send", send(dm, "too late")))
        ack = await chat.call("message:edit", {"message_id": message["id"], "body": "x"})
        assert ack["error"]["code"] == "forbidden"
        assert ack["error"]["details"]["reason"] == "edit_window"


async def test_unsending_a_free_message_leaves_a_tombstone_in_every_read(
    api: Api, sockets: Sockets
) -> None:
    alice, bob = await api.register(), await api.register()
    dm = await open_dm(sockets, alice, bob)
    alice_chat = await sockets.connect("/chat", alice)
    bob_chat = await sockets.connect("/chat", bob, events=("message:deleted",))
    first = sent(await alice_chat.call("message:send", send(dm, "oops")))
    sent(await alice_chat.call("message:send", send(dm, "fine")))

    ack = await bob_chat.call("message:delete", {"message_id": first["id"]})
    assert ack["error"]["code"] == "forbidden"  # not Bob's to take back
    ack = await alice_chat.call("message:delete", {"message_id": first["id"]})
    assert ack["ok"] and ack["data"]["deleted"] is True and ack["data"]["body"] is None
    [gone] = await bob_chat.wait_for("message:deleted")
    assert gone == {"message_id": first["id"], "conversation_id": dm, "seq": 1}

    ack = await bob_chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    items = ack["data"]["items"]
    assert [(m["seq"], m["deleted"], m["body"], m["media"]) for m in items] == [
        (1, True, None, []),
        (2, False, "fine", []),
    ]
    status, page = await api.call("GET", f"/api/v1/conversations/{dm}/messages", user=bob)
    assert status == 200 and [m["seq"] for m in page["items"]] == [2, 1]
    assert page["items"][1]["deleted"] is True
    sent(await alice_chat.call("message:delete", {"message_id": items[1]["id"]}))
    ack = await bob_chat.call("conversation:list", {})
    assert ack["data"]["items"][0]["last_message"]["deleted"] is True
    ack = await alice_chat.call("message:edit", {"message_id": first["id"], "body": "x"})
    assert ack["error"]["code"] == "conflict"


async def test_a_buyer_keeps_a_withdrawn_paid_message_and_others_see_a_tombstone(
    api: Api, sockets: Sockets
) -> None:
    creator = await api.register(role="creator")
    buyer, other = await api.register(), await api.register()
    creator_chat = await sockets.connect("/chat", creator)
    ack = await creator_chat.call("conversation:open", {"participant_ids": [buyer.id, other.id]})
    group = ack["data"]["id"]
    offer = sent(
        await creator_chat.call(
            "message:send", send(group, "the goods", price_cents=500, preview_text="peek")
        )
    )
    status, _ = await api.call(
        "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=buyer
    )
    assert status == 200
    buyer_ppv = await sockets.connect("/ppv", buyer)
    ack = await buyer_ppv.call("ppv:unlock", {"message_id": offer["id"], "pay_with": "wallet"})
    assert ack["ok"], ack

    # Bought: no more edits.
    ack = await creator_chat.call("message:edit", {"message_id": offer["id"], "body": "less"})
    assert ack["error"]["details"]["reason"] == "unlocked"

    buyer_chat = await sockets.connect("/chat", buyer, events=("message:deleted",))
    other_chat = await sockets.connect("/chat", other, events=("message:deleted",))
    assert (await creator_chat.call("message:delete", {"message_id": offer["id"]}))["ok"]
    await other_chat.wait_for("message:deleted")
    await buyer_chat.assert_nothing("message:deleted")

    ack = await buyer_chat.call("messages:sync", {"conversation_id": group, "after_seq": 0})
    [kept] = ack["data"]["items"]
    assert kept["body"] == "the goods" and kept["deleted"] is False and kept["locked"] is False
    ack = await other_chat.call("messages:sync", {"conversation_id": group, "after_seq": 0})
    [tomb] = ack["data"]["items"]
    assert tomb["deleted"] is True and tomb["body"] is None and tomb["seq"] == 1
    # Withdrawn: no longer on sale.
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=other)
    other_ppv = await sockets.connect("/ppv", other)
    ack = await other_ppv.call("ppv:unlock", {"message_id": offer["id"], "pay_with": "wallet"})
    assert ack["error"]["code"] == "not_found"


async def test_a_moderator_deletes_any_message_for_everyone_and_it_is_audited(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    creator = await api.register(role="creator")
    buyer, moderator = await api.register(), await api.register()
    await make_moderator(server, moderator)
    dm = await open_dm(sockets, creator, buyer)
    creator_chat = await sockets.connect("/chat", creator)
    offer = sent(await creator_chat.call("message:send", send(dm, "paid", price_cents=300)))
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1000}, user=buyer)
    buyer_ppv = await sockets.connect("/ppv", buyer)
    assert (await buyer_ppv.call("ppv:unlock", {"message_id": offer["id"], "pay_with": "wallet"}))[
        "ok"
    ]
    buyer_chat = await sockets.connect("/chat", buyer, events=("message:deleted",))
    mod_chat = await sockets.connect("/chat", moderator)
    ack = await mod_chat.call("message:delete", {"message_id": offer["id"]})
    assert ack["ok"] and ack["data"]["deleted"] is True
    await buyer_chat.wait_for("message:deleted")
    ack = await buyer_chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    assert ack["data"]["items"][0]["deleted"] is True  # even the buyer: a moderator's delete

    admin = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, admin.email, "admin")
    status, log = await api.call("GET", "/api/v1/admin/audit?action=message.deleted", user=admin)
    assert status == 200
    [entry] = log["items"]
    assert entry["actor_id"] == moderator.id and entry["target_id"] == creator.id
    assert entry["details"]["message_id"] == offer["id"]
