"""CORS for `/api/v1`: a browser app on a local dev server logs in; production stays strict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.browser_support import browser_binaries, console_errors, headless_chromium
from tests.support import Api

__all__ = ["browser_binaries"]

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


LOGIN_FROM_PAGE = """
const [api, email, password, done] = arguments;
(async () => {
  try {
    const login = await fetch(api + "/api/v1/auth/login", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Request-ID": "from-the-page"},
      body: JSON.stringify({email, password}),
    });
    const body = await login.json();
    const me = await fetch(api + "/api/v1/auth/me", {
      headers: {"Authorization": "Bearer " + body.access_token},
    });
    done({status: login.status, requestId: login.headers.get("X-Request-ID"),
          me: (await me.json()).user.id, origin: location.origin});
  } catch (error) {
    done({error: String(error), origin: location.origin});
  }
})();
"""


def _login_in_browser(
    binaries: tuple[str, str], page_url: str, api_url: str, email: str, password: str
) -> dict[str, object]:
    with headless_chromium(binaries) as session:
        session.get(page_url)
        result: dict[str, object] = session.execute_async_script(
            LOGIN_FROM_PAGE, api_url, email, password
        )
        result["errors"] = console_errors(session)
        return result


@pytest.mark.slow
async def test_headless_chromium_on_a_localhost_dev_server_logs_in(
    api: Api, base_url: str, browser_binaries: tuple[str, str]
) -> None:
    fan = await api.register()

    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text='<!doctype html><title>my app</title><link rel="icon" href="data:,">',
            content_type="text/html",
        )

    pages = web.Application()
    pages.router.add_get("/", page)
    dev_server = TestServer(pages, host="127.0.0.1")
    await dev_server.start_server()
    app_origin = f"http://localhost:{dev_server.port}"
    try:
        # The app is at http://localhost:<port>, the API at http://127.0.0.1:<other port>:
        # two origins, so Chromium sends a preflight and enforces the answer.
        page_url = f"{app_origin}/"
        result = await asyncio.to_thread(
            _login_in_browser, browser_binaries, page_url, base_url, fan.email, fan.password
        )
    finally:
        await dev_server.close()
    assert result.get("error") is None, result
    assert result["origin"] == app_origin
    assert result["status"] == 200 and result["me"] == fan.id
    assert result["requestId"] == "from-the-page"  # an exposed header the page may read
    assert result["errors"] == []
