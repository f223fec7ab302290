"""Bans: a moderator shuts a user out at once, on every node, and can let them back in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import roles
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.accounts_support import disconnected, revocations_linked, token
from tests.chat_support import open_dm, sent
from tests.nodes import node
from tests.support import Api, Sockets, User


async def moderator_of(api: Api, server: TestServer) -> User:
    """A new user with the moderator role."""
    user = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, user.email, "moderator")
    return user


async def test_a_banned_user_is_disconnected_and_refused_everywhere_until_unbanned(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    moderator, troll, friend = (
        await moderator_of(api, server),
        await api.register(),
        await api.register(),
    )
    dm = await open_dm(sockets, troll, friend)
    troll_chat = await sockets.connect("/chat", troll, events=("session:ended",))
    sent(
        await troll_chat.call(
            "message:send", {"conversation_id": dm, "client_id": "1", "body": "spam spam"}
        )
    )
    friend_chat = await sockets.connect("/chat", friend, events=("message:deleted",))

    status, body = await api.call(
        "POST", f"/api/v1/admin/users/{troll.id}/ban", json={"reason": "spam"}, user=troll
    )
    assert status == 403  # not a moderator
    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    status, body = await api.call(
        "POST",
        f"/api/v1/admin/users/{troll.id}/ban",
        json={"reason": "spam", "until": until, "delete_messages": True},
        user=moderator,
    )
    assert status == 200, body
    assert body["user_id"] == troll.id and body["deleted_messages"] == 1
    assert await troll_chat.wait_for("session:ended") == [{"reason": "banned"}]
    await disconnected(troll_chat)
    [gone] = await friend_chat.wait_for("message:deleted")
    assert gone["seq"] == 1

    # Tokens, logins and refreshes: forbidden, saying why and until when.
    status, body = await api.call("GET", "/api/v1/auth/me", user=troll)
    assert status == 403 and body["error"]["details"]["reason"] == "banned"
    assert body["error"]["details"]["until"] is not None
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": troll.email, "password": troll.password}
    )
    assert status == 403 and body["error"]["details"]["reason"] == "banned"
    status, body = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": troll.refresh_token}
    )
    assert status == 403 and body["error"]["details"]["reason"] == "banned"
    refused = (await sockets.refused("/chat", token=troll.access_token))["data"]
    assert refused["code"] == "forbidden" and refused["details"]["reason"] == "banned"

    status, _ = await api.call("DELETE", f"/api/v1/admin/users/{troll.id}/ban", user=moderator)
    assert status == 204
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": troll.email, "password": troll.password}
    )
    assert status == 200

    admin = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, admin.email, "admin")
    status, log = await api.call("GET", f"/api/v1/admin/audit?actor_id={moderator.id}", user=admin)
    actions = [e["action"] for e in log["items"]]
    assert "user.banned" in actions and "user.unbanned" in actions


async def test_a_moderator_cannot_ban_an_admin_or_themselves(api: Api, server: TestServer) -> None:
    moderator = await moderator_of(api, server)
    admin = await api.register()
    await roles.grant_by_email(server.app[RUNTIME].db, admin.email, "admin")
    status, _ = await api.call(
        "POST", f"/api/v1/admin/users/{admin.id}/ban", json={"reason": "x"}, user=moderator
    )
    assert status == 403
    status, _ = await api.call(
        "POST", f"/api/v1/admin/users/{moderator.id}/ban", json={"reason": "x"}, user=moderator
    )
    assert status == 400
    status, _ = await api.call(
        "POST", f"/api/v1/admin/users/{uuid.uuid4()}/ban", json={"reason": "x"}, user=moderator
    )
    assert status == 404


@pytest.mark.slow
async def test_a_ban_on_one_node_disconnects_the_users_sockets_on_another(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        await revocations_linked(a)
        await revocations_linked(b)
        moderator = await a.api.register()
        await roles.grant_by_email(a.server.app[RUNTIME].db, moderator.email, "moderator")
        troll = await a.api.register()
        on_b = [
            await b.sockets.connect(ns, troll, events=("session:ended",))
            for ns in ("/chat", "/presence", "/notifications")
        ]
        # A token that names no session (as an identity provider's may) ends as well.
        on_b.append(
            await b.sockets.connect(
                "/chat", token=token(troll.id, ttl=600), events=("session:ended",)
            )
        )
        status, _ = await a.api.call(
            "POST", f"/api/v1/admin/users/{troll.id}/ban", json={"reason": "abuse"}, user=moderator
        )
        assert status == 200
        for socket in on_b:
            assert await socket.wait_for("session:ended") == [{"reason": "banned"}]
            await disconnected(socket)
        status, body = await b.api.call("GET", "/api/v1/auth/me", user=troll)
        assert status == 403 and body["error"]["details"]["reason"] == "banned"
