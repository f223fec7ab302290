"""Reports: anyone reports what they can see, once; moderators work an urgent-first queue and
dismiss, delete or ban."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from backchannel.domain import roles
from backchannel.persistence.users import Role
from backchannel.server.keys import RUNTIME
from tests.chat_support import open_dm, sent
from tests.support import Api, Sockets, User


async def grant(server: TestServer, user: User, role: Role) -> None:
    """Give `user` a role, as `backchannel user grant` does."""
    await roles.grant_by_email(server.app[RUNTIME].db, user.email, role)


async def report(api: Api, user: User, target: dict[str, str], reason: str) -> tuple[int, Any]:
    """`POST /reports`."""
    return await api.call(
        "POST", "/api/v1/reports", json={"target": target, "reason": reason}, user=user
    )


async def test_a_reporter_reports_what_they_see_once_and_moderators_see_it_urgent_first(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    alice, bob, outsider = await api.register(), await api.register(), await api.register()
    moderator = await api.register()
    await grant(server, moderator, "moderator")
    dm = await open_dm(sockets, bob, alice)
    bob_chat = await sockets.connect("/chat", bob)
    for n in range(3):
        sent(
            await bob_chat.call(
                "message:send", {"conversation_id": dm, "client_id": f"m{n}", "body": f"msg {n}"}
            )
        )
    ack = await bob_chat.call("messages:sync", {"conversation_id": dm, "after_seq": 0})
    last = ack["data"]["items"][-1]

    status, body = await report(api, alice, {"type": "user", "id": bob.id}, "spam")
    assert status == 201 and body["status"] == "open"
    spam_id = body["id"]
    status, body = await report(api, alice, {"type": "message", "id": last["id"]}, "sexual_minors")
    assert status == 201
    urgent_id = body["id"]
    status, again = await report(api, alice, {"type": "message", "id": last["id"]}, "hate")
    assert status == 200 and again["id"] == urgent_id  # one report per reporter and target
    # What the reporter cannot see is not theirs to report.
    status, _ = await report(api, outsider, {"type": "message", "id": last["id"]}, "spam")
    assert status == 403
    status, _ = await report(api, outsider, {"type": "conversation", "id": dm}, "spam")
    assert status == 403
    status, body = await report(api, alice, {"type": "user", "id": bob.id}, "rude")
    assert status == 400

    status, _ = await api.call("GET", "/api/v1/admin/reports", user=alice)
    assert status == 403
    status, queue = await api.call("GET", "/api/v1/admin/reports?status=open", user=moderator)
    assert status == 200
    assert [r["id"] for r in queue["items"]] == [urgent_id, spam_id]
    first = queue["items"][0]
    assert first["urgent"] is True and first["reporter"]["user_id"] == alice.id
    assert first["message"]["body"] == "msg 2"
    assert [m["seq"] for m in first["recent_history"]] == [3, 2, 1]
    status, page = await api.call("GET", "/api/v1/admin/reports?limit=1", user=moderator)
    assert [r["id"] for r in page["items"]] == [urgent_id] and page["next_cursor"]
    status, page = await api.call(
        "GET", f"/api/v1/admin/reports?limit=1&cursor={page['next_cursor']}", user=moderator
    )
    assert [r["id"] for r in page["items"]] == [spam_id] and page["next_cursor"] is None

    # Resolve: delete the message (a tombstone for everyone), dismiss the other.
    alice_chat = await sockets.connect("/chat", alice, events=("message:deleted",))
    status, done = await api.call(
        "POST",
        f"/api/v1/admin/reports/{urgent_id}/resolve",
        json={"action": "delete_message", "note": "removed"},
        user=moderator,
    )
    assert status == 200 and done["status"] == "resolved" and done["resolution"] == "delete_message"
    await alice_chat.wait_for("message:deleted")
    status, _ = await api.call(
        "POST",
        f"/api/v1/admin/reports/{urgent_id}/resolve",
        json={"action": "dismiss"},
        user=moderator,
    )
    assert status == 409
    status, _ = await api.call(
        "POST",
        f"/api/v1/admin/reports/{spam_id}/resolve",
        json={"action": "delete_message"},
        user=moderator,
    )
    assert status == 400  # a user report has no message to delete
    status, queue = await api.call("GET", "/api/v1/admin/reports?status=open", user=moderator)
    assert [r["id"] for r in queue["items"]] == [spam_id]


async def test_resolving_with_a_ban_bans_the_user_behind_the_report(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    alice, bob, moderator = await api.register(), await api.register(), await api.register()
    await grant(server, moderator, "moderator")
    dm = await open_dm(sockets, bob, alice)
    bob_chat = await sockets.connect("/chat", bob, events=("session:ended",))
    message = sent(
        await bob_chat.call("message:send", {"conversation_id": dm, "client_id": "x", "body": "!"})
    )
    _, made = await report(api, alice, {"type": "message", "id": message["id"]}, "harassment")
    status, done = await api.call(
        "POST",
        f"/api/v1/admin/reports/{made['id']}/resolve",
        json={"action": "ban_user"},
        user=moderator,
    )
    assert status == 200 and done["resolution"] == "ban_user"
    assert await bob_chat.wait_for("session:ended") == [{"reason": "banned"}]
    status, body = await api.call("GET", "/api/v1/auth/me", user=bob)
    assert status == 403 and body["error"]["details"]["reason"] == "banned"
