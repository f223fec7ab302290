"""The reference JavaScript client, socket.io-client 4.x, works against Backchannel."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.support import Api

JS_DIR = Path(__file__).resolve().parents[1] / "js"


@pytest.fixture
def node() -> str:
    """The node binary, with the client installed by `make test` (npm ci in tests/js)."""
    binary = shutil.which("node")
    if binary is None or not (JS_DIR / "node_modules" / "socket.io-client").exists():
        pytest.skip("node and tests/js/node_modules are needed (make test installs them)")
    return binary


async def test_a_js_client_connects_with_a_login_token_and_is_refused_without(
    api: Api, base_url: str, node: str
) -> None:
    creator = await api.register(role="creator")
    status, login = await api.call(
        "POST", "/api/v1/auth/login", json={"email": creator.email, "password": creator.password}
    )
    assert status == 200
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "connect_check.mjs"),
        base_url,
        login["access_token"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout.decode().strip().splitlines()[-1])

    assert result["withToken"]["outcome"] == "connected"
    assert result["withToken"]["ack"]["ok"] is False  # every event is acked, even unknown ones
    assert result["withoutToken"] == {
        "outcome": "connect_error",
        "message": "an access token is required",
        "data": {"code": "unauthorized", "message": "an access token is required"},
    }


async def test_a_js_client_sends_and_receives_messages_paid_ones_locked(
    api: Api, base_url: str, node: str
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "chat_check.mjs"),
        base_url,
        creator.access_token,
        fan.id,
        fan.access_token,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout.decode().strip().splitlines()[-1])

    assert result["free"]["ok"] and result["paid"]["ok"]
    assert result["paid"]["data"]["body"] == "JS-SECRET"
    free, paid = result["received"]
    assert free == result["free"]["data"]
    assert paid["locked"] is True and paid["body"] is None
    assert paid["preview"] == {"text": "peek", "media_count": 0, "media": []}
    assert "JS-SECRET" not in json.dumps(result["received"])


async def test_a_js_client_upgrades_from_long_polling_and_stays_through_pings(
    settings: Settings, node: str
) -> None:
    # One-second pings (python-engineio advertises whole seconds), so that three seconds
    # connected means the client saw pings arrive and its pongs were taken.
    configured = settings.model_copy(
        update={"ping_interval_seconds": 1.0, "ping_timeout_seconds": 0.5}
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            fan = await Api(base_url, session).register()
        process = await asyncio.create_subprocess_exec(
            node,
            str(JS_DIR / "upgrade_check.mjs"),
            base_url,
            fan.access_token,
            "3000",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        await server.close()
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout.decode().strip().splitlines()[-1])

    # Only its own close at the end: no ping timeout, no transport error on the way.
    assert result["events"] == [
        "open:polling",
        "upgrade:websocket",
        "disconnect:io client disconnect",
    ], result
    assert result["outcome"] == "acked" and result["connected"] is True, result
    assert result["transport"] == "websocket"
    assert result["ack"]["ok"] is False and result["ack"]["error"]["code"] == "invalid"
