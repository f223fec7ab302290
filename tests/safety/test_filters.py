"""Filters, end to end: an admin sets the list; messages, previews, titles and display names
are rejected, masked (as stored) or flagged (stored, delivered, and reported)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from backchannel.domain import roles
from backchannel.persistence.users import Role
from backchannel.server.keys import RUNTIME
from tests.chat_support import open_dm
from tests.support import Api, Sockets, User

RULES = {
    "words": [
        {"text": "scam", "action": "mask"},
        {"text": "idiot", "action": "reject"},
        {"text": "crypto", "action": "flag"},
    ],
    "links": {"mode": "domains", "domains": ["example.com"], "action": "reject"},
}


async def staff(api: Api, server: TestServer, role: Role) -> User:
    """A new user with a staff role."""
    user = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, user.email, role)
    return user


def send(conversation_id: str, client_id: str, body: str, **extra: Any) -> dict[str, Any]:
    """A `message:send` payload."""
    return {"conversation_id": conversation_id, "client_id": client_id, "body": body, **extra}


async def test_an_admin_sets_filters_and_messages_obey_them(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    admin, moderator = await staff(api, server, "admin"), await staff(api, server, "moderator")
    status, _ = await api.call("PUT", "/api/v1/admin/filters", json=RULES, user=moderator)
    assert status == 403
    status, stored = await api.call("PUT", "/api/v1/admin/filters", json=RULES, user=admin)
    assert status == 200 and stored["words"][0] == {"text": "scam", "action": "mask"}
    status, read = await api.call("GET", "/api/v1/admin/filters", user=admin)
    assert read == stored
    status, _ = await api.call(
        "PUT",
        "/api/v1/admin/filters",
        json={"words": [{"text": "x", "action": "nuke"}]},
        user=admin,
    )
    assert status == 400

    creator, fan = await api.register(role="creator"), await api.register()
    dm = await open_dm(sockets, creator, fan)
    chat = await sockets.connect("/chat", creator)
    fan_chat = await sockets.connect("/chat", fan, events=("message:new",))

    ack = await chat.call("message:send", send(dm, "1", "you i.d.i.o.t"))
    assert ack["error"]["code"] == "invalid" and ack["error"]["details"]["reason"] == "filtered"
    ack = await chat.call("message:send", send(dm, "2", "go to https://evil.io now"))
    assert ack["error"]["details"]["reason"] == "filtered"
    ack = await chat.call(
        "message:send", send(dm, "3", "fine", price_cents=500, preview_text="an IDIOT teaser")
    )
    assert ack["error"]["details"]["fields"][0]["field"] == "preview_text"

    ack = await chat.call("message:send", send(dm, "4", "not a sc4aam, see example.com/x"))
    assert ack["ok"] and ack["data"]["body"] == "not a ***, see example.com/x"
    [delivered] = await fan_chat.wait_for("message:new")
    assert delivered["body"] == "not a ***, see example.com/x"
    ack = await fan_chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    assert ack["data"]["items"][0]["body"] == "not a ***, see example.com/x"  # stored masked

    ack = await chat.call("message:send", send(dm, "5", "buy my CRYPTO"))
    assert ack["ok"] and ack["data"]["body"] == "buy my CRYPTO"
    await fan_chat.wait_for("message:new", 2)
    status, queue = await api.call("GET", "/api/v1/admin/reports", user=moderator)
    [flagged] = queue["items"]
    assert flagged["reporter"] is None and flagged["target"] == {
        "type": "message",
        "id": ack["data"]["id"],
    }
    assert "crypto" in flagged["note"]

    # Titles and display names go through the same list.
    ack = await chat.call(
        "conversation:open", {"participant_ids": [fan.id, admin.id], "title": "idiots club"}
    )
    assert ack["ok"] is True  # "idiots" is not "idiot": only a whole word matches
    ack = await chat.call(
        "conversation:open", {"participant_ids": [fan.id, admin.id], "title": "idiot club"}
    )
    assert ack["error"]["details"]["reason"] == "filtered"
    status, profile = await api.call(
        "PATCH", "/api/v1/profiles/me", json={"display_name": "Scam King"}, user=fan
    )
    assert status == 200 and profile["display_name"] == "*** King"
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={
            "email": "scammer@example.com",
            "password": "correct horse battery",
            "display_name": "The Scam Lord",
        },
    )
    assert status == 201 and body["user"]["display_name"] == "The *** Lord"
    ppv = await sockets.connect("/ppv", creator)
    ack = await ppv.call(
        "ppv:broadcast", {"client_id": "b1", "body": "hey idiot", "price_cents": 500}
    )
    assert ack["error"]["details"]["reason"] == "filtered"
