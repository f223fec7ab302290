"""Liveness, readiness and Prometheus metrics, outside `/api/v1`."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web
from pydantic import BaseModel

from backchannel.errors import Unauthorized
from backchannel.http.requests import bearer_token, runtime
from backchannel.http.routing import RouteGroup, json_response
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import SIO
from backchannel.server.metrics import sample

routes = RouteGroup(tag="operations", prefix="")


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness, per dependency."""

    status: str
    database: str
    redis: str
    cluster: str


@routes.route("GET", "/healthz", summary="Liveness", response=Health, auth=None)
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return json_response(Health(status="ok"))


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: the database and, when configured, Redis",
    response=Readiness,
    auth=None,
    errors=(503,),
)
async def readyz(request: web.Request) -> web.Response:
    """Ready when every dependency answers."""
    rt = runtime(request)
    database_ok = await rt.db.ping() if rt.has_database else False
    redis_state = "not configured"
    redis_ok = True
    if rt.redis is not None:
        try:
            async with asyncio.timeout(2):
                await rt.redis.ping()
            redis_state = "ok"
        except Exception:
            redis_state, redis_ok = "down", False
    # The pub/sub link is separate from the command connection: Redis can answer a PING
    # while this node is still resubscribing, and until then it misses other nodes' emits.
    manager = request.app[SIO].manager
    cluster_state = "not configured"
    if isinstance(manager, ClusterManager):
        cluster_state = "ok" if manager.linked else "down"
        redis_ok = redis_ok and manager.linked
    ready = database_ok and redis_ok and not rt.draining
    body = Readiness(
        status="ok" if ready else ("draining" if rt.draining else "unavailable"),
        database="ok" if database_ok else "down",
        redis=redis_state,
        cluster=cluster_state,
    )
    return json_response(body, status=200 if ready else 503)


@routes.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics (a bearer token when BACKCHANNEL_METRICS_TOKEN is set)",
    auth=None,
    errors=(401,),
)
async def metrics(request: web.Request) -> web.Response:
    """The text exposition format."""
    rt = runtime(request)
    if rt.settings.metrics_token is not None:
        expected = rt.settings.metrics_token.get_secret_value().encode()
        given = (bearer_token(request) or "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("a valid metrics token is required")
    await sample(rt)
    body = rt.metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")
