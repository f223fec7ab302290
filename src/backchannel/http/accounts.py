"""`/accounts/me*` and `/auth/switch-profile`: an account and its profiles."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import accounts, auth
from backchannel.http.requests import caller, client_ip, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response
from backchannel.persistence.users import User

routes = RouteGroup(tag="accounts")


@routes.route(
    "GET",
    "/accounts/me",
    summary="The caller's account: its email, every profile, and the active one",
    response=accounts.AccountView,
    errors=(401,),
)
async def get_mine(request: web.Request) -> web.Response:
    """My account."""
    identity = await caller(request)
    return json_response(await accounts.get_account(runtime(request), identity))


@routes.route(
    "POST",
    "/accounts/me/profiles",
    summary="Add a profile (its own user id, name, role, conversations) to the account",
    body=accounts.NewProfile,
    response=User,
    status=201,
    errors=(400, 401, 409),
)
async def add_profile(request: web.Request) -> web.Response:
    """Add a profile."""
    identity = await caller(request)
    body = await read_body(request, accounts.NewProfile)
    return json_response(await accounts.add_profile(runtime(request), identity, body), status=201)


@routes.route(
    "POST",
    "/auth/switch-profile",
    summary="A token pair for another profile of the caller's account",
    body=accounts.SwitchProfile,
    response=auth.AuthResult,
    errors=(400, 401, 404),
)
async def switch_profile(request: web.Request) -> web.Response:
    """Act as another profile."""
    identity = await caller(request)
    body = await read_body(request, accounts.SwitchProfile)
    client = auth.Client(ip=client_ip(request), user_agent=request.headers.get("User-Agent"))
    return json_response(await accounts.switch_profile(runtime(request), identity, body, client))
