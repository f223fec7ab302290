"""Mute: a muted conversation still delivers live but stores no `message` notification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.chat_support import open_dm, sent
from tests.support import Api, Sockets


async def test_a_muted_conversation_notifies_nothing_until_unmuted(
    api: Api, sockets: Sockets
) -> None:
    alice, bob = await api.register(), await api.register()
    dm = await open_dm(sockets, alice, bob)
    until = (datetime.now(UTC) + timedelta(hours=8)).isoformat()
    status, body = await api.call(
        "POST", f"/api/v1/conversations/{dm}/mute", json={"until": until}, user=bob
    )
    assert status == 200 and body["muted_until"] is not None
    alice_chat = await sockets.connect("/chat", alice)
    bob_live = await sockets.connect("/chat", bob, events=("message:new",))
    sent(
        await alice_chat.call(
            "message:send", {"conversation_id": dm, "client_id": "1", "body": "a"}
        )
    )
    await bob_live.wait_for("message:new")  # live on open sockets, muted or not
    await bob_live.disconnect()
    sent(
        await alice_chat.call(
            "message:send", {"conversation_id": dm, "client_id": "2", "body": "b"}
        )
    )
    bob_notes = await sockets.connect("/notifications", bob)
    assert (await bob_notes.call("notifications:sync", {}))["data"]["items"] == []
    bob_chat = await sockets.connect("/chat", bob)
    listed = (await bob_chat.call("conversation:list", {}))["data"]["items"]
    assert listed[0]["muted_until"] is not None
    await bob_chat.disconnect()

    status, body = await api.call("DELETE", f"/api/v1/conversations/{dm}/mute", user=bob)
    assert status == 200 and body["muted_until"] is None
    sent(
        await alice_chat.call(
            "message:send", {"conversation_id": dm, "client_id": "3", "body": "c"}
        )
    )
    items = (await bob_notes.call("notifications:sync", {}))["data"]["items"]
    assert [n["type"] for n in items] == ["message"]


async def test_only_members_mute_and_never_into_the_past(api: Api, sockets: Sockets) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    dm = await open_dm(sockets, alice, bob)
    status, _ = await api.call("POST", f"/api/v1/conversations/{dm}/mute", json={}, user=carol)
    assert status == 403
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    status, _ = await api.call(
        "POST", f"/api/v1/conversations/{dm}/mute", json={"until": past}, user=alice
    )
    assert status == 400
    status, body = await api.call("POST", f"/api/v1/conversations/{dm}/mute", json={}, user=alice)
    assert status == 200 and body["muted_until"].startswith("9999")
