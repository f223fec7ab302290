"""Blocking: while A blocks B, nothing of B reaches A, and neither can DM the other."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from backchannel.server.settings import Settings
from tests.chat_support import open_dm, sent
from tests.nodes import node
from tests.relations import share_conversation, subscribe
from tests.services import RunServices
from tests.support import Api, Sockets, User


def send(text: str, conversation_id: str) -> dict[str, Any]:
    """A `message:send` payload."""
    return {"conversation_id": conversation_id, "client_id": uuid.uuid4().hex, "body": text}


async def block(api: Api, blocker: User, blocked: User) -> None:
    """`blocker` blocks `blocked` through the route."""
    status, body = await api.call(
        "POST", "/api/v1/blocks", json={"user_id": blocked.id}, user=blocker
    )
    assert status == 201, body
    assert body["user_id"] == blocked.id


async def test_a_blocked_user_can_neither_open_nor_write_the_dm(api: Api, sockets: Sockets) -> None:
    alice, bob = await api.register(), await api.register()
    dm = await open_dm(sockets, bob, alice)
    await block(api, alice, bob)

    bob_chat = await sockets.connect("/chat", bob)
    for ack in (
        await bob_chat.call("conversation:open", {"participant_ids": [alice.id]}),
        await bob_chat.call("message:send", send("hello?", dm)),
    ):
        assert ack["ok"] is False
        assert ack["error"]["code"] == "forbidden"
        assert ack["error"]["details"] == {"reason": "blocked"}
    # The blocker is refused the same way, and told nothing more.
    alice_chat = await sockets.connect("/chat", alice)
    ack = await alice_chat.call("message:send", send("and you?", dm))
    assert ack["error"]["details"] == {"reason": "blocked"}

    status, listed = await api.call("GET", "/api/v1/blocks", user=alice)
    assert status == 200 and [b["user_id"] for b in listed["items"]] == [bob.id]
    status, _ = await api.call("DELETE", f"/api/v1/blocks/{bob.id}", user=alice)
    assert status == 204
    assert sent(await bob_chat.call("message:send", send("friends again", dm)))["seq"] == 1
    status, _ = await api.call("DELETE", f"/api/v1/blocks/{bob.id}", user=alice)
    assert status == 404


async def test_blocking_yourself_or_nobody_is_refused(api: Api) -> None:
    alice = await api.register()
    status, body = await api.call("POST", "/api/v1/blocks", json={"user_id": alice.id}, user=alice)
    assert status == 400 and body["error"]["code"] == "invalid"
    status, body = await api.call("POST", "/api/v1/blocks", json={"user_id": "nope"}, user=alice)
    assert status == 404
    status, _ = await api.call("POST", "/api/v1/blocks", json={"user_id": alice.id})
    assert status == 401


async def test_in_a_group_the_blocker_gets_nothing_of_the_blocked_and_seqs_stay(
    api: Api, sockets: Sockets
) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    carol_chat = await sockets.connect("/chat", carol, events=("message:new",))
    ack = await carol_chat.call("conversation:open", {"participant_ids": [alice.id, bob.id]})
    group = ack["data"]["id"]
    bob_chat = await sockets.connect("/chat", bob, events=("message:new",))
    alice_chat = await sockets.connect("/chat", alice, events=("message:new",))
    alice_typing = await sockets.connect("/typing", alice, events=("typing",))
    carol_typing = await sockets.connect("/typing", carol, events=("typing",))
    bob_typing = await sockets.connect("/typing", bob)

    sent(await bob_chat.call("message:send", send("before", group)))
    await alice_chat.wait_for("message:new", 1)
    await block(api, alice, bob)

    during = sent(await bob_chat.call("message:send", send("during", group)))
    assert during["seq"] == 2
    await carol_chat.wait_for("message:new", 2)  # carol still gets it
    await bob_typing.call("typing:start", {"conversation_id": group})
    await carol_typing.wait_for("typing")
    await alice_typing.assert_nothing("typing")
    await alice_chat.assert_nothing("message:new")

    # Alice's sync and history skip it; Carol's keep every seq.
    ack = await alice_chat.call("messages:sync", {"conversation_id": group, "after_seq": 0})
    assert [m["body"] for m in ack["data"]["items"]] == ["before"]
    status, page = await api.call("GET", f"/api/v1/conversations/{group}/messages", user=alice)
    assert status == 200 and [m["seq"] for m in page["items"]] == [1]
    ack = await carol_chat.call("messages:sync", {"conversation_id": group, "after_seq": 0})
    assert [m["seq"] for m in ack["data"]["items"]] == [1, 2]
    [listed] = (await alice_chat.call("conversation:list", {}))["data"]["items"]
    assert listed["unread_count"] == 1  # the hidden message is not unread either
    assert listed["last_message"] is None  # the last one is Bob's, hidden

    # Unblocking restores the future, not the past.
    await api.call("DELETE", f"/api/v1/blocks/{bob.id}", user=alice)
    sent(await bob_chat.call("message:send", send("after", group)))
    [*_, arrived] = await alice_chat.wait_for("message:new", 2)
    assert arrived["body"] == "after"
    ack = await alice_chat.call("messages:sync", {"conversation_id": group, "after_seq": 0})
    assert [m["body"] for m in ack["data"]["items"]] == ["before", "after"]


async def test_presence_of_either_is_forbidden_to_the_other(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    alice, bob = await api.register(), await api.register()
    await share_conversation(services.database_url, alice.id, bob.id)
    alice_presence = await sockets.connect("/presence", alice)
    bob_presence = await sockets.connect("/presence", bob)
    assert (await alice_presence.call("presence:subscribe", {"user_ids": [bob.id]}))["ok"]
    await block(api, alice, bob)
    for watcher, watched in ((alice_presence, bob), (bob_presence, alice)):
        ack = await watcher.call("presence:subscribe", {"user_ids": [watched.id]})
        assert ack["error"]["code"] == "forbidden"


async def test_notifications_caused_by_the_blocked_are_not_stored(
    api: Api, sockets: Sockets
) -> None:
    alice, bob = await api.register(), await api.register()
    carol = await api.register()
    group_opener = await sockets.connect("/chat", carol)
    ack = await group_opener.call("conversation:open", {"participant_ids": [alice.id, bob.id]})
    group = ack["data"]["id"]
    await block(api, alice, bob)
    bob_chat = await sockets.connect("/chat", bob)
    await group_opener.disconnect()
    sent(await bob_chat.call("message:send", send("psst", group)))
    # Carol (offline) gets a message notification; Alice (offline too) does not.
    notes = await sockets.connect("/notifications", carol)
    ack = await notes.call("notifications:sync", {})
    assert [n["type"] for n in ack["data"]["items"]] == ["message"]
    notes = await sockets.connect("/notifications", alice)
    ack = await notes.call("notifications:sync", {})
    assert ack["data"]["items"] == []


@pytest.mark.slow
async def test_a_block_on_one_node_stops_a_sender_on_another_at_once(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        alice, bob, carol = (
            await a.api.register(),
            await a.api.register(),
            await a.api.register(),
        )
        carol_chat = await b.sockets.connect("/chat", carol)
        ack = await carol_chat.call("conversation:open", {"participant_ids": [alice.id, bob.id]})
        group = ack["data"]["id"]
        dm = await open_dm(b.sockets, bob, alice)
        alice_chat = await a.sockets.connect("/chat", alice, events=("message:new",))
        alice_typing = await a.sockets.connect("/typing", alice, events=("typing",))
        bob_chat = await b.sockets.connect("/chat", bob)
        bob_typing = await b.sockets.connect("/typing", bob)
        # Warm node B's cache: Bob's typing reaches Alice before the block.
        await bob_typing.call("typing:start", {"conversation_id": group})
        await alice_typing.wait_for("typing")
        await bob_typing.call("typing:stop", {"conversation_id": group})
        await alice_typing.wait_for("typing", 2)

        await block(a.api, alice, bob)  # on node A
        ack = await bob_chat.call("message:send", send("hi", dm))  # at once, on node B
        assert ack["error"]["details"] == {"reason": "blocked"}
        sent(await bob_chat.call("message:send", send("hi all", group)))
        await alice_chat.assert_nothing("message:new", within=0.5)
        # The typing cache on B heard of the block too.
        await bob_typing.call("typing:start", {"conversation_id": group})
        await alice_typing.assert_nothing("typing", within=0.5)


async def test_a_fan_who_blocks_a_creator_is_left_out_of_their_broadcasts(
    api: Api, sockets: Sockets, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    keeps, leaves = await api.register(), await api.register()
    for fan in (keeps, leaves):
        await subscribe(services.database_url, fan.id, creator.id)
    await block(api, leaves, creator)
    ppv = await sockets.connect("/ppv", creator)
    ack = await ppv.call(
        "ppv:broadcast", {"client_id": "b1", "body": "for fans", "price_cents": 500}
    )
    assert ack["ok"], ack
    assert ack["data"]["recipients"] == 1
