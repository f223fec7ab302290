"""`/demo`: a creator and a fan, each in a headless Chromium of their own, go through the whole
story on the page: register, chat (typing, read receipts, presence), a paid photo that arrives
locked with its blurred preview, a dev top-up, the unlock live, the creator's notification."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from backchannel.http.demo import SDK_BUNDLE
from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.browser_support import browser_binaries, console_errors, headless_chromium, screenshot
from tests.media_support import photo_with_gps
from tests.support import Api

__all__ = ["browser_binaries"]

WAIT_SECONDS = 20


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Dev mode as `make run` has it (who may message whom at its defaults), with top-ups."""
    return settings.model_copy(
        update={
            "dev_topup": True,
            "fan_to_fan_dms": False,
            "creator_dm_policy_default": "subscribers",
        }
    )


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[Callable[[bool], Any]]:
    """Start a production-mode server, with or without BACKCHANNEL_DEMO; returns its base URL."""
    servers: list[TestServer] = []

    async def start(demo: bool) -> str:
        update = {"env": "production", "dev_topup": False, "demo": demo}
        server = TestServer(create_app(settings.model_copy(update=update)), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


async def test_the_page_and_its_files_come_from_this_server_only(api: Api) -> None:
    async with api.session.get(f"{api.base_url}/demo") as response:
        page = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
    assert "http://" not in page and "https://" not in page  # no CDN
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe" not in policy
    for name in ("demo.js", "demo.css"):
        async with api.session.get(f"{api.base_url}/demo/{name}") as response:
            assert response.status == 200, name
            assert "http://" not in await response.text()


@pytest.mark.parametrize("name", ["index.html", "..%2Fdemo.py", "x.js"])
async def test_any_other_file_is_not_found(api: Api, name: str) -> None:
    status, body = await api.call("GET", f"/demo/{name}")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_production_serves_the_demo_only_with_the_setting(
    production: Callable[[bool], Any],
) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for demo, expected in ((False, 404), (True, 200)):
            base = await production(demo)
            for path in ("/demo", "/demo/demo.js"):
                async with session.get(base + path) as response:
                    assert response.status == expected, (demo, path)
                    if expected == 404:
                        assert (await response.json())["error"]["code"] == "not_found"


# -- the story in two browsers ------------------------------------------------------------


class Page:
    """One window of the demo, driven through Selenium with bounded waits."""

    def __init__(self, session: Any, name: str) -> None:
        self.session = session
        self.name = name

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.session.find_element(By.CSS_SELECTOR, css)

    def until(self, script: str, what: str, *args: Any) -> Any:
        """Wait until `script` (a JS expression's body, `return ...`) is truthy."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.session, WAIT_SECONDS, poll_frequency=0.1).until(
                lambda s: s.execute_script(script, *args)
            )
        except TimeoutException:
            shot = screenshot(self.session, f"demo-{self.name}-timeout")
            error = self.session.execute_script("return document.getElementById('error').innerText")
            raise AssertionError(f"{self.name}: {what} (page error: {error!r}; {shot})") from None

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def register(self, url: str, name: str, role: str) -> str:
        from selenium.webdriver.support.ui import Select

        self.session.get(url)
        self.find("#signup-name").send_keys(name)
        Select(self.find("#signup-role")).select_by_value(role)
        self.find("#signup-button").click()
        user_id: str = self.until(
            "return document.getElementById('my-id').textContent", f"{name} registered"
        )
        return user_id


def _story(binaries: tuple[str, str], url: str, photo: Path) -> dict[str, Any]:
    with (
        headless_chromium(binaries, height=1400) as one,
        headless_chromium(binaries, height=1400) as two,
    ):
        creator, fan = Page(one, "creator"), Page(two, "fan")
        creator.register(url, "Ada", "creator")
        fan_id = fan.register(url, "Fan", "fan")

        creator.find("#peer-id").send_keys(fan_id)
        creator.find("#open-button").click()
        for page, other in ((creator, "Fan"), (fan, "Ada")):
            page.until("return !document.getElementById('chat').hidden", "the chat opens")
            page.until(
                "return document.getElementById('peer-name').textContent === arguments[0]",
                f"the peer is {other}",
                other,
            )
            page.until(
                "return document.getElementById('peer-presence').classList.contains('online')",
                "the peer's presence dot is online",
            )

        # Typing shows on the other side; the message arrives and is marked read.
        fan.find("#body").send_keys("hi Ada")
        creator.until(
            "const t = document.getElementById('typing');"
            "return !t.hidden && t.textContent === 'Fan is typing…'",
            "the creator sees the fan typing",
        )
        fan.find("#send").click()
        creator.until(
            "return [...document.querySelectorAll('#messages li.theirs .body')]"
            ".some((b) => b.textContent === 'hi Ada')",
            "the creator gets the fan's message",
        )
        creator.until(
            "return document.getElementById('typing').hidden", "typing stops with the send"
        )
        fan.until(
            "return document.querySelector('#messages li.mine .receipt')?.dataset.read === 'true'",
            "the fan sees the read receipt",
        )
        creator.find("#body").send_keys("hello, fan")
        creator.find("#send").click()
        fan.until(
            "return [...document.querySelectorAll('#messages li.theirs .body')]"
            ".some((b) => b.textContent === 'hello, fan')",
            "the fan gets the creator's message",
        )
        creator.until(
            "return [...document.querySelectorAll('#messages li.mine .receipt')]"
            ".every((r) => r.dataset.read === 'true')",
            "the creator sees the read receipt",
        )
        shots = [screenshot(one, "demo-1-chat-creator"), screenshot(two, "demo-1-chat-fan")]

        # A paid photo arrives locked, with only its blurred preview.
        creator.find("#paid-file").send_keys(str(photo))
        creator.find("#paid-send").click()
        locked = (
            "const li = document.querySelector('#messages li.theirs.locked');"
            "const img = li && li.querySelector('img.preview');"
            "return li && img && img.complete && img.naturalWidth > 0"
            " && li.querySelector('button.unlock').textContent === 'Unlock for $3.00'"
            " && li.querySelector('.body').textContent === 'Locked: Something special'"
        )
        fan.until(locked, "the fan gets the paid photo locked with a blurred preview")
        preview_src = fan.session.execute_script(
            "return document.querySelector('#messages li.locked img').getAttribute('src')"
        )
        shots.append(screenshot(two, "demo-2-locked-fan"))

        # The fan tops up and unlocks it live; the creator is notified.
        fan.find("#topup").click()
        fan.until(
            "return document.getElementById('wallet').textContent === '$10.00'",
            "the top-up shows",
        )
        fan.find("#messages li.locked button.unlock").click()
        fan.until(
            "const li = [...document.querySelectorAll('#messages li.theirs')].pop();"
            "const img = li.querySelector('img.photo');"
            "return !li.classList.contains('locked')"
            " && li.querySelector('.body').textContent === 'The full story'"
            " && img && img.complete && img.naturalWidth > 0",
            "the paid message unlocks with its photo",
        )
        photo_src = fan.session.execute_script(
            "return [...document.querySelectorAll('#messages li.theirs')].pop()"
            ".querySelector('img').getAttribute('src')"
        )
        fan.until(
            "return document.getElementById('wallet').textContent === '$7.00'",
            "the wallet is charged",
        )
        creator.until(
            "return [...document.querySelectorAll('#notification-list strong')]"
            ".some((s) => s.textContent === 'New purchase')"
            " && document.getElementById('unread').textContent !== '0'",
            "the creator is notified of the purchase",
        )
        shots += [screenshot(two, "demo-3-unlocked-fan"), screenshot(one, "demo-3-creator")]
        return {
            "errors": {"creator": console_errors(one), "fan": console_errors(two)},
            "shots": shots,
            "preview_src": preview_src,
            "photo_src": photo_src,
        }


@pytest.mark.slow
async def test_a_creator_and_a_fan_go_through_the_whole_story_in_two_browsers(
    base_url: str, browser_binaries: tuple[str, str], tmp_path: Path
) -> None:
    if not SDK_BUNDLE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the client bundle is not built: run `make clients/js/dist/.built`")
        pytest.skip("the client bundle is not built (make clients/js/dist/.built)")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(photo_with_gps())

    result = await asyncio.to_thread(_story, browser_binaries, f"{base_url}/demo", photo)

    assert result["errors"] == {"creator": [], "fan": []}, result["errors"]
    assert "/preview" in result["preview_src"], result["preview_src"]
    assert "/preview" not in result["photo_src"], result["photo_src"]
    assert all(path.stat().st_size > 10_000 for path in result["shots"])
