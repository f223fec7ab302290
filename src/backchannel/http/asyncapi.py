"""`GET /api/v1/asyncapi.json`: the AsyncAPI 3.0 document of the Socket.IO namespaces."""

from __future__ import annotations

from aiohttp import web

from backchannel.handlers.asyncapi import with_server
from backchannel.http.routing import RouteGroup, json_response
from backchannel.server.keys import ASYNCAPI

routes = RouteGroup(tag="operations")


@routes.route(
    "GET", "/asyncapi.json", summary="The AsyncAPI 3.0 document of the sockets", auth=None
)
async def asyncapi(request: web.Request) -> web.Response:
    """Serve the document, naming the server it was fetched from."""
    return json_response(with_server(request.app[ASYNCAPI], request.host, secure=request.secure))
