"""`/profiles/*`: anyone's public profile, and editing your own."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import profiles
from backchannel.http.requests import caller, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="profiles")


@routes.route(
    "PATCH",
    "/profiles/me",
    summary="Edit your own profile",
    body=profiles.ProfileUpdate,
    response=profiles.Profile,
    errors=(400, 401, 403),
)
async def update_mine(request: web.Request) -> web.Response:
    """Edit the caller's profile."""
    identity = await caller(request)
    body = await read_body(request, profiles.ProfileUpdate)
    return json_response(await profiles.update_my_profile(runtime(request), identity.user_id, body))


@routes.route(
    "GET",
    "/profiles/{user_id}",
    summary="A user's public profile",
    response=profiles.Profile,
    errors=(401, 404),
)
async def get_one(request: web.Request) -> web.Response:
    """Read a profile."""
    await caller(request)
    user_id = request.match_info["user_id"]
    return json_response(await profiles.get_profile(runtime(request), user_id))
