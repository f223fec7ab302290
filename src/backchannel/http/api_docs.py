"""`/api/docs`: Swagger UI over the OpenAPI document, served from a pinned package (no CDN).

The PyPI package `swagger-ui-py` ships Swagger UI's dist files; only its static folder is read
(its Python side, a Jinja template per framework, is never imported). The page, its start-up
script and its styles are ours, so the page runs under a CSP that allows this server only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from backchannel import __version__
from backchannel.errors import NotFound
from backchannel.http.routing import RouteGroup
from backchannel.server.keys import RUNTIME

routes = RouteGroup(tag="operations", prefix="/api")

_OURS = Path(__file__).with_name("api_docs_page")
_FROM_PACKAGE = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png")
_FROM_US = ("docs.js", "docs.css")
_CACHE = "public, max-age=3600"


@cache
def swagger_ui_static() -> Path:
    """The installed Swagger UI dist folder (found without importing the package)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _policy(public_url: str) -> str:
    """Scripts and styles from this server only; "Try it out" may call it or the public URL."""
    parts = urlsplit(public_url)
    public_origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self' data:; connect-src 'self'{public_origin}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


@cache
def _page() -> str:
    return (
        (_OURS / "index.html")
        .read_text()
        .replace("{version}", __version__)
        .replace("{swagger_ui}", importlib.metadata.version("swagger-ui-py"))
    )


@routes.route("GET", "/docs", summary="HTML reference of this API (Swagger UI)", auth=None)
async def docs(request: web.Request) -> web.Response:
    """The page; it links the OpenAPI and AsyncAPI documents."""
    response = web.Response(text=_page(), content_type="text/html")
    response.headers["Content-Security-Policy"] = _policy(request.app[RUNTIME].settings.public_url)
    return response


@routes.route(
    "GET",
    "/docs/{asset}",
    summary="A file of the HTML reference (Swagger UI's dist files)",
    auth=None,
    errors=(404,),
)
async def asset(request: web.Request) -> web.FileResponse:
    """One of a fixed set of files; anything else is `not_found`."""
    name = request.match_info["asset"]
    if name in _FROM_PACKAGE:
        path = swagger_ui_static() / name
    elif name in _FROM_US:
        path = _OURS / name
    else:
        raise NotFound("no such file")
    return web.FileResponse(path, headers={"Cache-Control": _CACHE})
