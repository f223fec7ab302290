"""`/devices`: where a user's pushes go; `/push/webpush-key` for browsers subscribing."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import devices
from backchannel.http.requests import caller, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="push")


@routes.route(
    "POST",
    "/devices",
    summary="Register a device for pushes (the same token or endpoint again updates it)",
    body=devices.DeviceRequest,
    response=devices.DeviceView,
    status=201,
    errors=(400, 401),
)
async def register(request: web.Request) -> web.Response:
    """Register a Web Push subscription or an FCM/APNs token for the caller."""
    identity = await caller(request)
    body = await read_body(request, devices.DeviceRequest)
    view = await devices.register(runtime(request), identity.user_id, body)
    return json_response(view, 201)


@routes.route(
    "GET",
    "/devices",
    summary="The caller's registered devices",
    response=devices.DeviceList,
    errors=(401,),
)
async def list_devices(request: web.Request) -> web.Response:
    """The caller's devices."""
    identity = await caller(request)
    return json_response(await devices.list_devices(runtime(request), identity.user_id))


@routes.route(
    "DELETE",
    "/devices/{id}",
    summary="Forget one of the caller's devices",
    status=204,
    errors=(400, 401, 404),
)
async def remove(request: web.Request) -> web.Response:
    """Remove a device."""
    identity = await caller(request)
    device_id = devices.parse_device_id(request.match_info["id"])
    await devices.remove(runtime(request), identity.user_id, device_id)
    return web.Response(status=204)


@routes.route(
    "GET",
    "/push/webpush-key",
    summary="The VAPID application server key for pushManager.subscribe",
    response=devices.WebPushKey,
    auth="none",
    errors=(),
)
async def webpush_key(request: web.Request) -> web.Response:
    """The Web Push application server key."""
    return json_response(devices.webpush_key(runtime(request)))
