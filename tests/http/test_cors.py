"""CORS for `/api/v1`: a browser app on a local dev server logs in; production stays strict."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.support import Api

DEV_APP = "http://localhost:3000"


async def _preflight(
    api: Api, path: str, origin: str, method: str = "POST"
) -> aiohttp.ClientResponse:
    async with api.session.options(
        f"{api.base_url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type",
        },
    ) as response:
        return response


async def _login(api: Api, origin: str, email: str, password: str) -> aiohttp.ClientResponse:
    async with api.session.post(
        f"{api.base_url}/api/v1/auth/login",
        json={"email": email, "password": password},
        headers={"Origin": origin},
    ) as response:
        await response.read()
        return response


@pytest.mark.parametrize(
    "origin", [DEV_APP, "http://localhost:5173", "http://127.0.0.1:8000", "http://localhost"]
)
async def test_a_browser_app_on_localhost_logs_in_in_dev_mode(api: Api, origin: str) -> None:
    fan = await api.register()
    preflight = await _preflight(api, "/api/v1/auth/login", origin)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    login = await _login(api, origin, fan.email, fan.password)
    assert login.status == 200
    assert login.headers["Access-Control-Allow-Origin"] == origin
    assert login.headers["Vary"] == "Origin"

    async with api.session.get(
        f"{api.base_url}/api/v1/auth/me", headers={"Origin": origin, **fan.auth_headers}
    ) as me:
        assert me.status == 200
        assert me.headers["Access-Control-Allow-Origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        "http://example.com",
        "https://localhost:3000",  # a local app is plain http; https is a real site
        "http://localhost.example.com",
        "http://localhost:3000.example.com",
        "http://127.0.0.1.nip.io",
        "null",
    ],
)
async def test_dev_mode_allows_only_local_origins(api: Api, origin: str) -> None:
    fan = await api.register()
    preflight = await _preflight(api, "/api/v1/auth/login", origin)
    assert "Access-Control-Allow-Origin" not in preflight.headers
    login = await _login(api, origin, fan.email, fan.password)
    assert login.status == 200  # the server answers; the browser withholds it from the page
    assert "Access-Control-Allow-Origin" not in login.headers


async def test_dev_cors_covers_only_the_api(api: Api) -> None:
    async with api.session.get(f"{api.base_url}/healthz", headers={"Origin": DEV_APP}) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers


@pytest.fixture
async def production_api(settings: Settings) -> AsyncIterator[Api]:
    """A production node that allows one configured origin."""
    production = settings.model_copy(
        update={"env": "production", "cors_origins": "https://app.example.com"}
    )
    server = TestServer(create_app(production), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(str(server.make_url("")), session)
    finally:
        await server.close()


async def test_production_allows_only_the_configured_origins(production_api: Api) -> None:
    api = production_api
    fan = await api.register()
    for origin in (DEV_APP, "http://127.0.0.1:8000"):
        preflight = await _preflight(api, "/api/v1/auth/login", origin)
        assert "Access-Control-Allow-Origin" not in preflight.headers
        login = await _login(api, origin, fan.email, fan.password)
        assert "Access-Control-Allow-Origin" not in login.headers

    preflight = await _preflight(api, "/api/v1/auth/login", "https://app.example.com")
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    login = await _login(api, "https://app.example.com", fan.email, fan.password)
    assert login.status == 200
    assert login.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
