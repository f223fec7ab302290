"""Liveness, readiness and Prometheus metrics, outside `/api/v1`."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel

from backchannel.http.requests import runtime
from backchannel.http.routing import RouteGroup, json_response
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import SIO

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


@routes.route("GET", "/metrics", summary="Prometheus metrics", auth=None)
async def metrics(request: web.Request) -> web.Response:
    """The text exposition format."""
    body = runtime(request).metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")
