"""`/webhook-endpoints`: a platform backend's signed outbound webhooks (server API key)."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import api_keys, webhook_endpoints
from backchannel.domain.webhook_endpoints import (
    DeliveriesQuery,
    DeliveryPage,
    DeliveryView,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointPatch,
    EndpointView,
)
from backchannel.http.requests import bearer_token, query, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="webhook endpoints")


async def _owner(request: web.Request) -> str:
    """The API key's name: endpoints belong to the key that created them."""
    key = await api_keys.authenticate_key(runtime(request).db, bearer_token(request))
    return key.name


def _endpoint_id(request: web.Request) -> int:
    return webhook_endpoints.parse_id(request.match_info["id"], "webhook endpoint")


@routes.route(
    "POST",
    "/webhook-endpoints",
    summary="Register a webhook endpoint; the answer carries its signing secret, shown once",
    body=EndpointCreate,
    response=EndpointCreated,
    status=201,
    auth="apiKey",
    errors=(400, 401, 409),
)
async def create(request: web.Request) -> web.Response:
    """201 `{id, url, events, secret, ...}`."""
    owner = await _owner(request)
    body = await read_body(request, EndpointCreate)
    return json_response(await webhook_endpoints.create(runtime(request), owner, body), 201)


@routes.route(
    "GET",
    "/webhook-endpoints",
    summary="The API key's webhook endpoints",
    response=EndpointList,
    auth="apiKey",
    errors=(401,),
)
async def list_endpoints(request: web.Request) -> web.Response:
    """Every endpoint of the key."""
    owner = await _owner(request)
    return json_response(await webhook_endpoints.list_mine(runtime(request), owner))


@routes.route(
    "GET",
    "/webhook-endpoints/{id}",
    summary="One webhook endpoint",
    response=EndpointView,
    auth="apiKey",
    errors=(401, 404),
)
async def get_endpoint(request: web.Request) -> web.Response:
    """One endpoint of the key."""
    owner = await _owner(request)
    return json_response(
        await webhook_endpoints.get(runtime(request), owner, _endpoint_id(request))
    )


@routes.route(
    "PATCH",
    "/webhook-endpoints/{id}",
    summary="Change a webhook endpoint's url, events, description, include_bodies or enabled",
    body=EndpointPatch,
    response=EndpointView,
    auth="apiKey",
    errors=(400, 401, 404),
)
async def update_endpoint(request: web.Request) -> web.Response:
    """Change the given fields."""
    owner = await _owner(request)
    endpoint_id = _endpoint_id(request)
    body = await read_body(request, EndpointPatch)
    return json_response(await webhook_endpoints.update(runtime(request), owner, endpoint_id, body))


@routes.route(
    "DELETE",
    "/webhook-endpoints/{id}",
    summary="Remove a webhook endpoint and its undelivered events",
    status=204,
    auth="apiKey",
    errors=(401, 404),
)
async def delete_endpoint(request: web.Request) -> web.Response:
    """204 once removed."""
    owner = await _owner(request)
    await webhook_endpoints.delete(runtime(request), owner, _endpoint_id(request))
    return web.Response(status=204)


@routes.route(
    "GET",
    "/webhook-endpoints/{id}/deliveries",
    summary="A webhook endpoint's deliveries, newest first (`status` filters, `cursor` pages)",
    response=DeliveryPage,
    query=DeliveriesQuery,
    auth="apiKey",
    errors=(400, 401, 404),
)
async def list_deliveries(request: web.Request) -> web.Response:
    """A page of deliveries."""
    owner = await _owner(request)
    endpoint_id = _endpoint_id(request)
    q = query(request, DeliveriesQuery)
    return json_response(
        await webhook_endpoints.deliveries(runtime(request), owner, endpoint_id, q)
    )


@routes.route(
    "POST",
    "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
    summary="Attempt a delivery again now (its retry window starts over)",
    response=DeliveryView,
    status=202,
    auth="apiKey",
    errors=(401, 404, 409),
)
async def retry_delivery(request: web.Request) -> web.Response:
    """202 with the delivery, pending again."""
    owner = await _owner(request)
    endpoint_id = _endpoint_id(request)
    delivery_id = webhook_endpoints.parse_id(request.match_info["delivery_id"], "delivery")
    view = await webhook_endpoints.retry(runtime(request), owner, endpoint_id, delivery_id)
    return json_response(view, 202)
