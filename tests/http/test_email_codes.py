"""Logging in by a code sent by email, read from a real SMTP server's mailbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.mail_support import Mailbox, smtp_server
from tests.nodes import eventually
from tests.processes import free_port
from tests.services import RunServices
from tests.support import Api


@pytest.fixture
async def mail_api(settings: Settings) -> AsyncIterator[tuple[Api, Mailbox]]:
    """Backchannel sending its mail to an SMTP server of the test."""
    async with smtp_server() as mailbox:
        configured = settings.model_copy(
            update={
                "smtp_url": f"smtp://127.0.0.1:{mailbox.port}",
                "email_from": "Backchannel <codes@bc.example>",
            }
        )
        server = TestServer(create_app(configured), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                yield Api(str(server.make_url("")).rstrip("/"), session), mailbox
        finally:
            await server.close()


async def start(api: Api, email: str) -> tuple[int, object]:
    """Ask for a code."""
    return await api.call("POST", "/api/v1/auth/otp/start", json={"email": email})


async def verify(api: Api, email: str, code: str, **extra: object) -> tuple[int, object]:
    """Use a code."""
    return await api.call(
        "POST", "/api/v1/auth/otp/verify", json={"email": email, "code": code, **extra}
    )


async def test_a_new_user_logs_in_with_the_code_from_their_mail_and_again_later(
    mail_api: tuple[Api, Mailbox],
) -> None:
    api, mailbox = mail_api
    status, body = await start(api, "New@Example.com")
    assert (status, body) == (202, {"expires_in": 300})
    [message] = await mailbox.wait_for("new@example.com")
    assert message["From"] == "Backchannel <codes@bc.example>"
    code = await mailbox.code_for("new@example.com")

    status, body = await verify(api, "new@example.com", code, display_name="Newcomer")
    assert status == 200, body
    assert isinstance(body, dict) and body["created"] is True
    assert body["user"]["display_name"] == "Newcomer" and body["user"]["role"] == "fan"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.call("GET", "/api/v1/auth/me", headers=headers))[0] == 200

    # The code works once.
    status, _ = await verify(api, "new@example.com", code)
    assert status == 401
    # A second code logs into the same account.
    await start(api, "new@example.com")
    second = await mailbox.code_for("new@example.com", 2)
    status, later = await verify(api, "new@example.com", second)
    assert status == 200 and isinstance(later, dict)
    assert later["created"] is False and later["user"]["id"] == body["user"]["id"]


async def test_asking_for_a_code_never_reveals_whether_an_account_exists(
    mail_api: tuple[Api, Mailbox],
) -> None:
    api, _ = mail_api
    await api.register(email="known@example.com")
    assert await start(api, "known@example.com") == await start(api, "unknown@example.com")
    status, _ = await start(api, "not an address")
    assert status == 400


async def test_a_code_is_burnt_by_the_third_wrong_try(mail_api: tuple[Api, Mailbox]) -> None:
    api, mailbox = mail_api
    await start(api, "burn@example.com")
    code = await mailbox.code_for("burn@example.com")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        status, body = await verify(api, "burn@example.com", wrong)
        assert status == 401
    status, body = await verify(api, "burn@example.com", code)
    assert status == 401 and isinstance(body, dict)
    assert body["error"]["code"] == "unauthorized"


async def test_a_code_is_refused_after_five_minutes(
    mail_api: tuple[Api, Mailbox], services: RunServices
) -> None:
    api, mailbox = mail_api
    await start(api, "late@example.com")
    code = await mailbox.code_for("late@example.com")
    conn = await asyncpg.connect(services.database_url)
    try:
        # Five minutes pass (the code's clock is the database's).
        await conn.execute(
            "update email_codes set created_at = created_at - interval '5 minutes 1 second',"
            " expires_at = expires_at - interval '5 minutes 1 second'"
        )
    finally:
        await conn.close()
    status, _ = await verify(api, "late@example.com", code)
    assert status == 401


async def test_a_fourth_code_in_an_hour_is_rate_limited(mail_api: tuple[Api, Mailbox]) -> None:
    api, mailbox = mail_api
    for _ in range(3):
        assert (await start(api, "many@example.com"))[0] == 202
    status, body = await start(api, "many@example.com")
    assert status == 429 and isinstance(body, dict)
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["retry_after_ms"] > 3_000_000
    # Only the newest code works: asking again retires the earlier ones.
    codes = [await mailbox.code_for("many@example.com", n) for n in (1, 2, 3)]
    if codes[0] != codes[2]:
        assert (await verify(api, "many@example.com", codes[0]))[0] == 401
    assert (await verify(api, "many@example.com", codes[2]))[0] == 200


async def test_mail_is_retried_when_the_mail_server_is_down_at_first(
    settings: Settings, services: RunServices
) -> None:
    port = free_port()
    configured = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    conn = await asyncpg.connect(services.database_url)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(str(server.make_url("")).rstrip("/"), session)
            assert (await start(api, "patient@example.com"))[0] == 202  # not held by SMTP

            async def attempts() -> int:
                return int(await conn.fetchval("select attempts from outgoing_email"))

            await eventually(attempts, what="a failed send")
            mailbox = Mailbox()
            loop = asyncio.get_running_loop()
            smtp = await loop.create_server(lambda: SMTP(mailbox), "127.0.0.1", port)
            try:
                assert len(await mailbox.code_for("patient@example.com")) == 6

                async def wiped() -> bool:
                    return await conn.fetchval("select body = '' from outgoing_email") is True

                await eventually(wiped, what="the sent body wiped")
            finally:
                smtp.close()
                await smtp.wait_closed()
    finally:
        await conn.close()
        await server.close()


async def test_without_smtp_in_dev_the_code_goes_to_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backchannel.server.mailer")
    assert (await start(api, "dev@example.com"))[0] == 202
    await eventually(
        lambda: any("Your sign-in code is" in r.getMessage() for r in caplog.records),
        what="code in the log",
    )


async def test_an_account_made_by_code_is_deleted_with_a_fresh_code(
    mail_api: tuple[Api, Mailbox],
) -> None:
    api, mailbox = mail_api
    await start(api, "leaving@example.com")
    status, body = await verify(
        api, "leaving@example.com", await mailbox.code_for("leaving@example.com")
    )
    assert status == 200 and isinstance(body, dict)
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    status, _ = await api.call(
        "DELETE", "/api/v1/accounts/me", headers=headers, json={"code": "123456"}
    )
    assert status == 401  # no live code: the first one was used
    await start(api, "leaving@example.com")
    code = await mailbox.code_for("leaving@example.com", 2)
    status, deleted = await api.call(
        "DELETE", "/api/v1/accounts/me", headers=headers, json={"code": code}
    )
    assert status == 200 and isinstance(deleted, dict) and deleted["erased"] is False
    assert (await api.call("GET", "/api/v1/auth/me", headers=headers))[0] == 401


async def test_deleting_an_account_takes_a_password_or_a_code_not_both(api: Api) -> None:
    fan = await api.register()
    for body in ({}, {"code": "123456", "password": fan.password}, {"code": "12"}):
        status, answer = await api.call("DELETE", "/api/v1/accounts/me", user=fan, json=body)
        assert status == 400 and isinstance(answer, dict)
        assert answer["error"]["code"] == "invalid"
    assert (await api.call("GET", "/api/v1/auth/me", user=fan))[0] == 200
