"""socket.io-client in a real browser: headless Chromium (Debian's) driven by Selenium."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.browser_support import browser_binaries
from tests.support import Api

__all__ = ["browser_binaries"]  # the session fixture this module's `chromium` builds on

pytestmark = pytest.mark.slow

BUNDLE = (
    Path(__file__).resolve().parents[1] / "js/node_modules/socket.io-client/dist/socket.io.min.js"
)

PAGE = """<!doctype html><html><head><script src="/socket.io.min.js"></script></head>
<body>browser check</body></html>"""

# Runs in the page: connect /chat the default way (polling, then the upgrade), ack once over
# the websocket, then get refused on an unknown namespace. Calls back with what happened.
CHECK = """
const [url, token, done] = arguments;
const result = {};
const socket = io(url + "/chat", { auth: { token }, reconnection: false });
const timer = setTimeout(() => done({ ...result, outcome: "timeout" }), 15000);
socket.on("connect_error", (err) => {
  clearTimeout(timer);
  done({ outcome: "refused", message: err.message });
});
socket.on("connect", () => {
  const engine = socket.io.engine;
  const afterUpgrade = () => socket.emit("no:such:event", {}, (ack) => {
    result.ack = ack;
    result.transport = engine.transport.name;
    const bad = io(url + "/nope", { auth: { token }, reconnection: false, forceNew: true });
    bad.on("connect_error", (err) => {
      clearTimeout(timer);
      bad.close(); socket.close();
      done({ ...result, outcome: "done", refusedMessage: err.message, refusedData: err.data });
    });
  });
  if (engine.transport.name === "websocket") afterUpgrade();
  else engine.once("upgrade", afterUpgrade);
});
"""


@pytest.fixture(scope="session")
def chromium(browser_binaries: tuple[str, str]) -> tuple[str, str]:
    """(browser, driver) paths, once the page's socket.io-client bundle is there too."""
    if not BUNDLE.exists():
        pytest.skip("tests/js/node_modules is needed (make test installs it)")
    return browser_binaries


def _run_in_browser(browser: str, driver: str, page_url: str, url: str, token: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        session.set_script_timeout(30)
        session.get(page_url)
        return session.execute_async_script(CHECK, url, token)
    finally:
        session.quit()


async def test_socket_io_client_in_headless_chromium_upgrades_acks_and_is_refused(
    api: Api, base_url: str, chromium: tuple[str, str]
) -> None:
    fan = await api.register()

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def bundle(_: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLE)

    pages = web.Application()
    pages.router.add_get("/", page)
    pages.router.add_get("/socket.io.min.js", bundle)
    page_server = TestServer(pages, host="127.0.0.1")
    await page_server.start_server()
    try:
        result = await asyncio.to_thread(
            _run_in_browser,
            *chromium,
            str(page_server.make_url("/")),
            base_url,
            fan.access_token,
        )
    finally:
        await page_server.close()
    assert result["outcome"] == "done", result
    assert result["transport"] == "websocket"
    assert result["ack"]["ok"] is False and result["ack"]["error"]["code"] == "invalid"
    assert result["refusedData"] == {"code": "not_found", "message": "no namespace /nope"}
