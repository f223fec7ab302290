"""`/api/docs`: the HTML reference renders every operation in a real browser, from this server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browser_support import (
    browser_binaries,
    console_errors,
    headless_chromium,
    screenshot,
)
from tests.support import Api

__all__ = ["browser_binaries"]


async def test_the_page_links_both_documents_and_loads_nothing_from_elsewhere(api: Api) -> None:
    async with api.session.get(f"{api.base_url}/api/docs") as response:
        page = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
    assert 'href="v1/openapi.json"' in page and 'href="v1/asyncapi.json"' in page
    assert "http://" not in page and "https://" not in page  # no CDN, no outside link
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "unsafe" not in policy


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("docs.js", "text/javascript"),
        ("favicon-32x32.png", "image/png"),
    ],
)
async def test_its_files_come_from_this_server(api: Api, name: str, content_type: str) -> None:
    async with api.session.get(f"{api.base_url}/api/docs/{name}") as response:
        body = await response.read()
        assert response.status == 200
        assert response.content_type in {content_type, "application/javascript"}
        assert response.headers["Cache-Control"].startswith("public")
    assert len(body) > 100


@pytest.mark.parametrize("name", ["index.j2", "..%2Fapi_docs.py", "swagger-editor.js", "x"])
async def test_any_other_file_is_not_found(api: Api, name: str) -> None:
    status, body = await api.call("GET", f"/api/docs/{name}")
    assert status == 404 and body["error"]["code"] == "not_found"


RENDERED = """
const [expected, done] = arguments;
const started = Date.now();
(function poll() {
  const blocks = document.querySelectorAll(".swagger-ui .opblock");
  const failed = document.querySelector(".swagger-ui .errors-wrapper");
  if (blocks.length >= expected || failed || Date.now() - started > 20000) {
    done({
      operations: blocks.length,
      failed: failed ? failed.innerText : null,
      title: (document.querySelector(".swagger-ui .info .title") || {}).innerText || null,
      asyncapi: document.getElementById("asyncapi").getAttribute("href"),
      asyncapiResolved: document.getElementById("asyncapi").href,
    });
  } else setTimeout(poll, 100);
})();
"""


def _render(binaries: tuple[str, str], url: str, operations: int) -> dict[str, Any]:
    with headless_chromium(binaries) as session:
        session.get(url)
        result: dict[str, Any] = session.execute_async_script(RENDERED, operations)
        # Open one operation, as a reader would, so the screenshot shows its schema too.
        session.execute_script(
            "document.querySelector('#operations-payments-post_purchases_create "
            ".opblock-summary-control').click()"
        )
        session.execute_async_script(
            "const done = arguments[0]; (function wait() {"
            " if (document.querySelector('#operations-payments-post_purchases_create "
            ".responses-wrapper')) done(); else setTimeout(wait, 100); })();"
        )
        result["path"] = str(screenshot(session, "api-docs"))
        result["errors"] = console_errors(session)
        return result


@pytest.mark.slow
async def test_swagger_ui_renders_every_operation_in_headless_chromium(
    api: Api, base_url: str, browser_binaries: tuple[str, str]
) -> None:
    _, document = await api.call("GET", "/api/v1/openapi.json")
    operations = sum(len(methods) for methods in document["paths"].values())

    result = await asyncio.to_thread(_render, browser_binaries, f"{base_url}/api/docs", operations)

    assert result["errors"] == [], result["errors"]
    assert result["failed"] is None, result["failed"]
    assert result["operations"] == operations, result
    assert result["title"] is not None and result["title"].startswith("Backchannel")
    assert result["asyncapiResolved"] == f"{base_url}/api/v1/asyncapi.json"
