"""One account, two profiles: each converses, is seen online and is notified as itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.mail_support import Mailbox, smtp_server
from tests.support import Api, Sockets, User


@pytest.fixture
async def mail_node(settings: Settings) -> AsyncIterator[tuple[Api, Sockets, Mailbox]]:
    """A server that mails codes to the test's SMTP server."""
    async with smtp_server() as mailbox:
        configured = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{mailbox.port}"})
        server = TestServer(create_app(configured), host="127.0.0.1")
        await server.start_server()
        url = str(server.make_url("")).rstrip("/")
        opened = Sockets(url)
        try:
            async with aiohttp.ClientSession() as session:
                yield Api(url, session), opened, mailbox
        finally:
            await opened.close_all()
            await server.close()


def as_user(body: dict[str, object], email: str) -> User:
    """A test user from a token-pair response."""
    user = body["user"]
    assert isinstance(user, dict)
    return User(
        id=user["id"],
        email=email,
        password="",
        role=user["role"],
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
    )


async def test_a_code_login_adds_a_second_profile_and_both_chat_as_themselves(
    mail_node: tuple[Api, Sockets, Mailbox],
) -> None:
    api, sockets, mailbox = mail_node
    email = "ada@smile.example"
    await api.call("POST", "/api/v1/auth/otp/start", json={"email": email})
    code = await mailbox.code_for(email)
    status, body = await api.call(
        "POST",
        "/api/v1/auth/otp/verify",
        json={"email": email, "code": code, "display_name": "Ada the Innovator"},
    )
    assert status == 200 and body["created"]
    innovator = as_user(body, email)

    status, profile = await api.call(
        "POST",
        "/api/v1/accounts/me/profiles",
        user=innovator,
        json={"display_name": "Ada the Mentor", "kind": "mentor"},
    )
    assert status == 201, profile
    assert profile["kind"] == "mentor" and profile["role"] == "fan" and profile["email"] is None
    status, switched = await api.call(
        "POST", "/api/v1/auth/switch-profile", user=innovator, json={"profile_id": profile["id"]}
    )
    assert status == 200, switched
    mentor = as_user(switched, email)
    claims = jwt.decode(mentor.access_token, TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == profile["id"]
    status, account = await api.call("GET", "/api/v1/accounts/me", user=mentor)
    assert claims["acc"] == account["account_id"]
    assert account["email"] == email and account["active_profile_id"] == mentor.id
    assert [p["id"] for p in account["profiles"]] == [innovator.id, mentor.id]

    # A third user talks to each profile; neither has /chat open, so each is notified.
    third = await api.register(display_name="Grace")
    inboxes = {
        me.id: await sockets.connect("/notifications", me, events=("notification",))
        for me in (innovator, mentor)
    }
    grace = await sockets.connect("/chat", third, events=("message:new",))
    conversations = {}
    for me in (innovator, mentor):
        ack = await grace.call("conversation:open", {"participant_ids": [me.id]})
        assert ack["ok"], ack
        conversations[me.id] = ack["data"]["id"]
        sent = await grace.call(
            "message:send",
            {"conversation_id": ack["data"]["id"], "client_id": f"hi-{me.id}", "body": "hi"},
        )
        assert sent["ok"], sent
    for me in (innovator, mentor):
        [notice] = await inboxes[me.id].wait_for("notification")
        assert notice["data"]["conversation_id"] == conversations[me.id]
        await inboxes[me.id].assert_nothing("notification", within=0.1)

    # Each is online as itself, to someone they share a conversation with.
    watcher = await sockets.connect("/presence", third)
    ack = await watcher.call("presence:subscribe", {"user_ids": [innovator.id, mentor.id]})
    assert {item["user_id"]: item["status"] for item in ack["data"]["items"]} == {
        innovator.id: "online",
        mentor.id: "online",
    }

    # Each replies as itself.
    for me in (innovator, mentor):
        chat = await sockets.connect("/chat", me)
        reply = await chat.call(
            "message:send",
            {"conversation_id": conversations[me.id], "client_id": "reply", "body": "hello"},
        )
        assert reply["ok"], reply
    arrived = await grace.wait_for("message:new", 4)
    replies = {m["sender_id"]: m["conversation_id"] for m in arrived if m["body"] == "hello"}
    assert replies == {
        innovator.id: conversations[innovator.id],
        mentor.id: conversations[mentor.id],
    }


async def test_a_profile_of_another_account_is_not_found_and_sessions_span_the_account(
    api: Api,
) -> None:
    ada, bob = await api.register(), await api.register()
    status, theirs = await api.call(
        "POST",
        "/api/v1/accounts/me/profiles",
        user=bob,
        json={"display_name": "Bob the Investor", "kind": "investor"},
    )
    assert status == 201
    status, body = await api.call(
        "POST", "/api/v1/auth/switch-profile", user=ada, json={"profile_id": theirs["id"]}
    )
    assert status == 404 and body["error"]["code"] == "not_found"
    status, switched = await api.call(
        "POST", "/api/v1/auth/switch-profile", user=bob, json={"profile_id": theirs["id"]}
    )
    investor = as_user(switched, bob.email)
    status, listed = await api.call("GET", "/api/v1/auth/sessions", user=bob)
    assert {item["profile_id"] for item in listed["items"]} == {bob.id, investor.id}
    # Logging out everywhere ends every profile's sessions.
    assert (await api.call("POST", "/api/v1/auth/logout-all", user=investor))[0] == 204
    assert (await api.call("GET", "/api/v1/auth/me", user=bob))[0] == 401
    assert (await api.call("GET", "/api/v1/auth/me", user=investor))[0] == 401
    assert (await api.call("GET", "/api/v1/auth/me", user=ada))[0] == 200


async def test_existing_users_are_one_profile_accounts(api: Api) -> None:
    fan = await api.register()
    status, account = await api.call("GET", "/api/v1/accounts/me", user=fan)
    assert status == 200
    assert [p["id"] for p in account["profiles"]] == [fan.id]
    assert account["email"] == fan.email and account["active_profile_id"] == fan.id
