"""`/auth/*`: register, login, refresh, logout, and who am I."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import auth, profiles
from backchannel.http.requests import caller, client_ip, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="auth")


@routes.route(
    "POST",
    "/auth/register",
    summary="Create an account and log in",
    body=auth.RegisterRequest,
    response=auth.AuthResult,
    status=201,
    auth=None,
    errors=(400, 409),
)
async def register(request: web.Request) -> web.Response:
    """Create an account."""
    body = await read_body(request, auth.RegisterRequest)
    return json_response(await auth.register(runtime(request), body), status=201)


@routes.route(
    "POST",
    "/auth/login",
    summary="Log in with email and password",
    body=auth.LoginRequest,
    response=auth.AuthResult,
    auth=None,
    errors=(400, 401, 429),
)
async def login(request: web.Request) -> web.Response:
    """Log in."""
    body = await read_body(request, auth.LoginRequest)
    return json_response(await auth.login(runtime(request), body, client_ip=client_ip(request)))


@routes.route(
    "POST",
    "/auth/refresh",
    summary="Exchange a refresh token for a new pair",
    body=auth.RefreshRequest,
    response=auth.AuthResult,
    auth=None,
    errors=(400, 401),
)
async def refresh(request: web.Request) -> web.Response:
    """Rotate a refresh token."""
    body = await read_body(request, auth.RefreshRequest)
    return json_response(await auth.refresh(runtime(request), body))


@routes.route(
    "POST",
    "/auth/logout",
    summary="Revoke a refresh token's session",
    body=auth.RefreshRequest,
    status=204,
    auth=None,
    errors=(400,),
)
async def logout(request: web.Request) -> web.Response:
    """Log out."""
    body = await read_body(request, auth.RefreshRequest)
    await auth.logout(runtime(request), body)
    return web.Response(status=204)


@routes.route(
    "GET",
    "/auth/me",
    summary="The caller with their profile",
    response=profiles.Me,
    errors=(401,),
)
async def me(request: web.Request) -> web.Response:
    """Who am I."""
    identity = await caller(request)
    return json_response(await profiles.get_me(runtime(request), identity.user_id))
