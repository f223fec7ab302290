"""`/accounts/me*` and `/auth/switch-profile`: an account and its profiles."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import account_rights, accounts, auth
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


@routes.route(
    "POST",
    "/accounts/me/export",
    summary="Start an export of everything stored about the account",
    response=account_rights.ExportStarted,
    status=202,
    errors=(401,),
)
async def start_export(request: web.Request) -> web.Response:
    """Export my data."""
    identity = await caller(request)
    return json_response(await account_rights.start_export(runtime(request), identity), status=202)


@routes.route(
    "GET",
    "/accounts/me/exports/{export_id}",
    summary="Where an export stands; when ready, where to download it",
    response=account_rights.ExportStatus,
    errors=(401, 404),
)
async def export_status(request: web.Request) -> web.Response:
    """An export's status."""
    identity = await caller(request)
    export_id = request.match_info["export_id"]
    return json_response(await account_rights.export_status(runtime(request), identity, export_id))


@routes.route(
    "GET",
    "/accounts/me/exports/{export_id}/download",
    summary="The export's JSON document",
    errors=(401, 404),
)
async def export_download(request: web.Request) -> web.Response:
    """Download an export."""
    identity = await caller(request)
    document = await account_rights.export_download(
        runtime(request), identity, request.match_info["export_id"]
    )
    return web.Response(
        text=document,
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="backchannel-export.json"'},
    )


@routes.route(
    "DELETE",
    "/accounts/me",
    summary="Deactivate the account now and erase it after the grace period",
    body=account_rights.DeleteAccount,
    response=account_rights.Deleted,
    errors=(400, 401),
)
async def delete_mine(request: web.Request) -> web.Response:
    """Delete my account."""
    identity = await caller(request)
    body = await read_body(request, account_rights.DeleteAccount)
    return json_response(
        await account_rights.delete_account(runtime(request), identity, body, client_ip(request))
    )
