"""Roles: an operator makes the first admin on the command line; admins change roles, approve
creators (who are told live) and read the audit log."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.cli import main
from backchannel.server.settings import Settings
from tests.services import RunServices
from tests.support import Api, Sockets

Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli(services: RunServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    """Run `backchannel ...` (in a thread: the CLI runs its own event loop)."""
    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(tmp_path))

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_an_operator_grants_and_revokes_roles_on_the_command_line(api: Api, cli: Cli) -> None:
    boss = await api.register()
    code, out, _ = await cli("user", "grant", boss.email.upper(), "admin")
    assert code == 0 and out.split() == [boss.email, boss.id, "admin"]
    _, me = await api.call("GET", "/api/v1/auth/me", user=boss)
    assert me["user"]["role"] == "admin"

    code, _, err = await cli("user", "revoke", boss.email, "moderator")
    assert code == 1 and "is admin, not moderator" in err
    code, _, err = await cli("user", "grant", "nobody@example.com", "admin")
    assert code == 1 and "no active user" in err
    code, out, _ = await cli("user", "revoke", boss.email, "admin")
    assert code == 0 and out.split()[-1] == "fan"
    with pytest.raises(SystemExit):
        await cli("user", "grant", boss.email, "emperor")


async def test_only_admins_change_roles_and_every_change_is_audited(api: Api, cli: Cli) -> None:
    admin, fan = await api.register(), await api.register()
    await cli("user", "grant", admin.email, "admin")

    status, body = await api.call(
        "POST", f"/api/v1/admin/users/{admin.id}/role", user=fan, json={"role": "fan"}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, user = await api.call(
        "POST", f"/api/v1/admin/users/{fan.id}/role", user=admin, json={"role": "moderator"}
    )
    assert status == 200 and user["role"] == "moderator"
    status, body = await api.call(
        "POST", f"/api/v1/admin/users/{fan.id}/role", user=admin, json={"role": "king"}
    )
    assert status == 400
    status, body = await api.call(
        "POST", "/api/v1/admin/users/nobody/role", user=admin, json={"role": "fan"}
    )
    assert status == 404

    status, page = await api.call(
        "GET", "/api/v1/admin/audit?action=role.changed&cursor=", user=admin
    )
    assert status == 200
    changes = [(e["target_id"], e["details"]["to"], e["details"]["by"]) for e in page["items"]]
    assert changes == [(fan.id, "moderator", "api"), (admin.id, "admin", "cli")]
    assert page["items"][0]["actor_id"] == admin.id
    status, page = await api.call("GET", f"/api/v1/admin/audit?actor_id={admin.id}", user=admin)
    assert {e["action"] for e in page["items"]} == {"role.changed"}
    status, _ = await api.call("GET", "/api/v1/admin/audit", user=fan)
    assert status == 403


async def test_the_audit_log_records_logins_reuse_and_session_ends_in_pages(
    api: Api, cli: Cli
) -> None:
    admin = await api.register()
    await cli("user", "grant", admin.email, "admin")
    fan = await api.register()
    await api.call("POST", "/api/v1/auth/login", json={"email": fan.email, "password": "nope-nope"})
    _, login = await api.call(
        "POST", "/api/v1/auth/login", json={"email": fan.email, "password": fan.password}
    )
    await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": fan.refresh_token})
    await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": fan.refresh_token})
    await api.call("POST", "/api/v1/auth/logout", json={"refresh_token": login["refresh_token"]})

    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = await api.call(
            "GET", f"/api/v1/admin/audit?limit=2&cursor={cursor}", user=admin
        )
        assert status == 200
        seen.extend(page["items"])
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    actions = [e["action"] for e in reversed(seen) if e["target_id"] == fan.id]
    assert actions == ["login.failed", "login.succeeded", "refresh.reused", "session.ended"]
    failed = next(e for e in seen if e["action"] == "login.failed")
    assert failed["actor_id"] is None and failed["ip"] == "127.0.0.1"


async def test_under_approval_a_creator_signup_waits_for_an_admin_and_is_told_live(
    settings: Settings, cli: Cli
) -> None:
    import aiohttp

    server = TestServer(create_app(settings.model_copy(update={"creator_signup": "approval"})))
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    opened = Sockets(url)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(url, session)
            admin = await api.register()
            await cli("user", "grant", admin.email, "admin")
            hopeful = await api.register(role="creator")
            status, me = await api.call("GET", "/api/v1/auth/me", user=hopeful)
            assert me["user"]["role"] == "fan"
            rejected = await api.register(role="creator")
            inbox = await opened.connect("/notifications", hopeful, events=("notification",))

            status, page = await api.call("GET", "/api/v1/admin/creator-requests", user=admin)
            assert status == 200
            pending = {item["user_id"]: item for item in page["items"]}
            assert set(pending) == {hopeful.id, rejected.id}
            assert pending[hopeful.id]["status"] == "pending"
            status, _ = await api.call("GET", "/api/v1/admin/creator-requests", user=hopeful)
            assert status == 403

            request_id = pending[hopeful.id]["id"]
            status, decided = await api.call(
                "POST", f"/api/v1/admin/creator-requests/{request_id}/approve", user=admin
            )
            assert status == 200 and decided["status"] == "approved"
            [notice] = await inbox.wait_for("notification")
            assert notice["type"] == "creator_request.approved"
            status, me = await api.call("GET", "/api/v1/auth/me", user=hopeful)
            assert me["user"]["role"] == "creator"
            status, _ = await api.call(
                "POST", f"/api/v1/admin/creator-requests/{request_id}/reject", user=admin
            )
            assert status == 404  # already decided

            other_id = pending[rejected.id]["id"]
            status, decided = await api.call(
                "POST", f"/api/v1/admin/creator-requests/{other_id}/reject", user=admin
            )
            assert status == 200 and decided["status"] == "rejected"
            status, me = await api.call("GET", "/api/v1/auth/me", user=rejected)
            assert me["user"]["role"] == "fan"
            status, page = await api.call("GET", "/api/v1/admin/creator-requests", user=admin)
            assert page["items"] == []
            status, page = await api.call(
                "GET", "/api/v1/admin/creator-requests?status=rejected", user=admin
            )
            assert [item["user_id"] for item in page["items"]] == [rejected.id]
    finally:
        await opened.close_all()
        await server.close()


async def test_creator_signup_is_open_in_dev_and_needs_approval_in_production() -> None:
    assert Settings(env="dev").creator_signup_mode == "open"
    production = {"env": "production", "jwt_secret": "s" * 40, "database_url": "postgresql://db/x"}
    assert Settings(**production).creator_signup_mode == "approval"
    open_prod = Settings(**production, creator_signup="open")
    assert open_prod.creator_signup_mode == "open"


async def test_every_response_carries_the_security_headers(api: Api, settings: Settings) -> None:
    for path in ("/healthz", "/api/v1/auth/me", "/api/v1/no-such-route"):
        async with api.session.get(f"{api.base_url}{path}") as response:
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "Strict-Transport-Security" not in response.headers
    server = TestServer(
        create_app(settings.model_copy(update={"public_url": "https://chat.example"}))
    )
    await server.start_server()
    try:
        async with api.session.get(str(server.make_url("/healthz"))) as response:
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await server.close()
