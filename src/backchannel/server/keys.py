"""Typed keys for everything the aiohttp application holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web

if TYPE_CHECKING:
    from backchannel.http.routing import RouteSpec
    from backchannel.server.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
SIO: web.AppKey[socketio.AsyncServer] = web.AppKey("sio")
ROUTE_SPECS: web.AppKey[list[RouteSpec]] = web.AppKey("route_specs")
# The AsyncAPI document of the namespaces, built once by the app factory.
ASYNCAPI: web.AppKey[dict[str, Any]] = web.AppKey("asyncapi")
