"""A user takes their data away (export) and leaves (deactivate, erase): books still balance,
conversations keep their seqs, and the email can start over."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.cli import main
from backchannel.server.settings import Settings
from tests.accounts_support import disconnected, revocations_linked
from tests.media_support import photo_with_gps, upload
from tests.nodes import eventually, node
from tests.services import RunServices
from tests.stripe_support import balanced_ledger
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger"]


@pytest.fixture
async def rights(settings: Settings) -> AsyncIterator[tuple[Api, Sockets]]:
    """A server where deletion erases at once and the dev wallet top-up is on."""
    configured = settings.model_copy(update={"erase_grace_days": 0, "dev_topup": True})
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    opened = Sockets(url)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(url, session), opened
    finally:
        await opened.close_all()
        await server.close()


async def chat(sockets: Sockets, creator: User, fan: User) -> tuple[str, list[Any]]:
    """A DM: the fan writes twice, the creator sends a paid message, the fan writes again."""
    fan_chat = await sockets.connect("/chat", fan)
    creator_chat = await sockets.connect("/chat", creator)
    opened = await fan_chat.call("conversation:open", {"participant_ids": [creator.id]})
    conversation_id = opened["data"]["id"]
    acks = []
    for who, payload in [
        (fan_chat, {"body": "hello"}),
        (
            fan_chat,
            {
                "body": "my address is 1 Main St",
                "media": [{"url": "https://m/1.jpg", "type": "image"}],
            },
        ),
        (creator_chat, {"body": "secret", "price_cents": 500}),
        (fan_chat, {"body": "bye"}),
    ]:
        ack = await who.call(
            "message:send",
            {"conversation_id": conversation_id, "client_id": f"c{len(acks)}", **payload},
        )
        assert ack["ok"], ack
        acks.append(ack["data"])
    await fan_chat.disconnect()
    await creator_chat.disconnect()
    return conversation_id, acks


async def test_an_export_holds_the_users_messages_as_they_saw_them(
    rights: tuple[Api, Sockets],
) -> None:
    api, sockets = rights
    creator, fan = await api.register("creator"), await api.register()
    conversation_id, _ = await chat(sockets, creator, fan)
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 700}, user=fan)
    inbox = await sockets.connect("/notifications", fan, events=("notification",))

    status, started = await api.call("POST", "/api/v1/accounts/me/export", user=fan)
    assert status == 202
    [notice] = await inbox.wait_for("notification")
    assert notice["type"] == "account.export_ready"
    assert notice["data"]["export_id"] == started["export_id"]
    status, state = await api.call(
        "GET", f"/api/v1/accounts/me/exports/{started['export_id']}", user=fan
    )
    assert status == 200 and state["status"] == "ready"
    path = state["download_url"].split("://", 1)[1].split("/", 1)[1]
    status, document = await api.call("GET", f"/{path}", user=fan)
    assert status == 200
    [profile] = document["profiles"]
    assert profile["profile"]["id"] == fan.id and profile["profile"]["email"] == fan.email
    [conversation] = profile["conversations"]
    assert conversation["id"] == conversation_id
    seen = [(m["seq"], m["body"], m["locked"]) for m in conversation["messages"]]
    assert seen == [
        (1, "hello", False),
        (2, "my address is 1 Main St", False),
        (3, None, True),  # a paid message the fan never unlocked
        (4, "bye", False),
    ]
    assert sum(line["amount_cents"] for line in profile["ledger"]) == 700
    assert profile["wallet"][0]["balance_cents"] == 700
    assert {"purchases", "subscriptions", "notifications", "devices", "blocks", "reports"} <= set(
        profile
    )
    # Someone else's export is not found.
    status, _ = await api.call(
        "GET", f"/api/v1/accounts/me/exports/{started['export_id']}", user=creator
    )
    assert status == 404


@pytest.mark.usefixtures("balanced_ledger")
async def test_an_erased_user_leaves_tombstones_a_balanced_ledger_and_cannot_log_in(
    rights: tuple[Api, Sockets], services: RunServices
) -> None:
    api, sockets = rights
    creator, fan = await api.register("creator"), await api.register()
    conversation_id, _ = await chat(sockets, creator, fan)
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 900}, user=fan)
    await upload(api, fan, photo_with_gps(), "image/jpeg")
    live = await sockets.connect("/presence", fan, events=("session:ended",))

    status, body = await api.call(
        "DELETE", "/api/v1/accounts/me", user=fan, json={"password": "wrong-password"}
    )
    assert status == 401
    status, body = await api.call(
        "DELETE", "/api/v1/accounts/me", user=fan, json={"password": fan.password}
    )
    assert status == 200, body
    assert body["erased"] is True and body["deactivated_profile_ids"] == [fan.id]
    assert await live.wait_for("session:ended") == [{"reason": "account_deleted"}]
    await disconnected(live)

    status, _ = await api.call(
        "POST", "/api/v1/auth/login", json={"email": fan.email, "password": fan.password}
    )
    assert status == 401
    assert (await api.call("GET", "/api/v1/auth/me", user=fan))[0] == 401

    status, history = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=creator
    )
    assert status == 200
    messages = sorted(history["items"], key=lambda m: m["seq"])
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]  # gap-free
    tombstones = [m for m in messages if m["sender_id"] == fan.id]
    assert [(m["body"], m["media"]) for m in tombstones] == [(None, [])] * 3
    assert messages[2]["body"] == "secret"  # the creator's own message is theirs

    conn = await asyncpg.connect(services.database_url)
    try:
        unbalanced = await conn.fetchval(
            "select count(*) from (select txn_id from ledger_entries group by txn_id, currency"
            " having sum(amount_cents) <> 0) t"
        )
        assert unbalanced == 0
        accounts = {r["account"] for r in await conn.fetch("select account from ledger_entries")}
        assert not any(fan.id in account for account in accounts)
        assert any(account.startswith("wallet:erased-") for account in accounts)
        row = await conn.fetchrow("select email, display_name from users where id = $1", fan.id)
        assert (row["email"], row["display_name"]) == (None, "Deleted user")
        # Its uploads are no one's now: the rows are gone, and `media gc` takes the objects.
        assert await conn.fetchval("select count(*) from media where owner_id = $1", fan.id) == 0
    finally:
        await conn.close()

    # The address is free for a new account.
    again = await api.register(email=fan.email)
    assert again.id != fan.id


async def test_a_deactivated_account_waits_its_grace_period_or_an_operator(
    api: Api,
    sockets: Sockets,
    services: RunServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    fan = await api.register()
    status, body = await api.call(
        "DELETE", "/api/v1/accounts/me", user=fan, json={"password": fan.password}
    )
    assert status == 200 and body["erased"] is False
    assert body["erase_after"] is not None
    status, _ = await api.call(
        "POST", "/api/v1/auth/login", json={"email": fan.email, "password": fan.password}
    )
    assert status == 401
    assert (await sockets.refused("/chat", token=fan.access_token))["data"]["code"] == (
        "unauthorized"
    )

    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(tmp_path))
    code = await asyncio.to_thread(main, ["account", "erase", fan.email])
    out, _ = capsys.readouterr()
    assert code == 0 and fan.id in out
    code = await asyncio.to_thread(main, ["account", "erase", fan.email])
    assert code == 1

    async def email_free() -> bool:
        status, _ = await api.call(
            "POST",
            "/api/v1/auth/register",
            json={"email": fan.email, "password": "a new password", "display_name": "Again"},
        )
        return status == 201

    await eventually(email_free, what="the email free again")


async def test_an_operator_erasure_ends_the_accounts_sockets_on_running_nodes(
    cluster_settings: Settings,
    services: RunServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with node(cluster_settings) as a:
        await revocations_linked(a)
        fan = await a.api.register()
        socket = await a.sockets.connect("/chat", fan, events=("session:ended",))
        for name in list(os.environ):
            if name.startswith("BACKCHANNEL_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("DATABASE_URL", services.database_url)
        assert cluster_settings.redis_url is not None
        monkeypatch.setenv("REDIS_URL", cluster_settings.redis_url)  # the nodes' Redis
        monkeypatch.setenv("BACKCHANNEL_REDIS_PREFIX", cluster_settings.redis_prefix)
        monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(tmp_path))
        assert await asyncio.to_thread(main, ["account", "erase", fan.email]) == 0
        assert await socket.wait_for("session:ended") == [{"reason": "account_deleted"}]
        await disconnected(socket)
