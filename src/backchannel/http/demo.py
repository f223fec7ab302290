"""`/demo`: a page on the JavaScript client (clients/js), served in dev mode or with
`BACKCHANNEL_DEMO=1`, `not_found` otherwise.

The page, its script and its styles live beside this module (`demo_page/`); the client is the
self-contained browser bundle `make` builds from `clients/js` (socket.io-client inside), so the
page loads nothing from anywhere but this server and runs under a CSP that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from backchannel.errors import NotFound
from backchannel.http.routing import RouteGroup
from backchannel.server.keys import RUNTIME

if TYPE_CHECKING:
    from backchannel.server.settings import Settings

routes = RouteGroup(tag="demo", prefix="/demo")

_PAGE = Path(__file__).with_name("demo_page")
_FILES = {"demo.js": _PAGE / "demo.js", "demo.css": _PAGE / "demo.css"}
# Built by `make` (clients/js/dist/.built) in a checkout; an installed wheel has no demo client.
SDK_BUNDLE = Path(__file__).resolve().parents[3] / "clients/js/dist/browser/backchannel-client.js"
SDK_NAME = "backchannel-client.js"
# Scripts, styles and images from this server only; sockets and API calls to it too.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def demo_enabled(settings: Settings) -> bool:
    """Whether `/demo` is served: always in dev mode, elsewhere only with `BACKCHANNEL_DEMO`."""
    return settings.demo or settings.env == "dev"


def _check(request: web.Request) -> None:
    if not demo_enabled(request.app[RUNTIME].settings):
        raise NotFound("the demo is served in dev mode or with BACKCHANNEL_DEMO=1")


@routes.route(
    "GET",
    "",
    summary="The browser demo (dev mode or BACKCHANNEL_DEMO=1; 404 otherwise)",
    auth=None,
    errors=(404,),
)
async def page(request: web.Request) -> web.FileResponse:
    """The demo's one HTML page."""
    _check(request)
    return web.FileResponse(
        _PAGE / "index.html",
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
    )


@routes.route(
    "GET",
    "/{asset}",
    summary="A file of the browser demo: its script, styles, or the JavaScript client bundle",
    auth=None,
    errors=(404,),
)
async def asset(request: web.Request) -> web.FileResponse:
    """`demo.js`, `demo.css` or `backchannel-client.js`; anything else is `not_found`."""
    _check(request)
    name = request.match_info["asset"]
    if name == SDK_NAME:
        if not SDK_BUNDLE.exists():
            raise NotFound("the client bundle is not built: run `make clients/js/dist/.built`")
        path = SDK_BUNDLE
    elif name in _FILES:
        path = _FILES[name]
    else:
        raise NotFound("no such file")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
