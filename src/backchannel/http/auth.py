"""`/auth/*`: register, login, refresh, logout, sessions, and who am I."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import auth, email_codes, profiles, sessions
from backchannel.errors import BackchannelError
from backchannel.http.requests import bearer_token, caller, client_ip, read_body, runtime
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
    return json_response(await auth.register(runtime(request), body, _client(request)), status=201)


def _client(request: web.Request) -> auth.Client:
    return auth.Client(ip=client_ip(request), user_agent=request.headers.get("User-Agent"))


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
    return json_response(await auth.login(runtime(request), body, _client(request)))


@routes.route(
    "POST",
    "/auth/otp/start",
    summary="Email a 6-digit sign-in code (never says whether an account exists)",
    body=email_codes.CodeStart,
    response=email_codes.CodeStarted,
    status=202,
    auth=None,
    errors=(400, 429, 503),
)
async def otp_start(request: web.Request) -> web.Response:
    """Send a code."""
    body = await read_body(request, email_codes.CodeStart)
    return json_response(await email_codes.start(runtime(request), body), status=202)


@routes.route(
    "POST",
    "/auth/otp/verify",
    summary="Log in with an emailed code; the account is created on first use",
    body=email_codes.CodeVerify,
    response=email_codes.CodeLogin,
    auth=None,
    errors=(400, 401),
)
async def otp_verify(request: web.Request) -> web.Response:
    """Use a code."""
    body = await read_body(request, email_codes.CodeVerify)
    return json_response(await email_codes.verify(runtime(request), body, _client(request)))


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
    summary="End the session of a refresh token (or of the bearer token): its tokens are "
    "refused and its sockets get session:ended",
    body=auth.LogoutRequest,
    status=204,
    auth=None,
    errors=(400,),
)
async def logout(request: web.Request) -> web.Response:
    """Log out."""
    body = await read_body(request, auth.LogoutRequest)
    identity = None
    if body.refresh_token is None and bearer_token(request) is not None:
        try:
            identity = await caller(request)
        except BackchannelError:
            identity = None  # an ended or expired session: nothing left to end
    await sessions.logout(runtime(request), body.refresh_token, identity, client_ip(request))
    return web.Response(status=204)


@routes.route(
    "POST",
    "/auth/logout-all",
    summary="End every session of the caller's account",
    status=204,
    errors=(401,),
)
async def logout_all(request: web.Request) -> web.Response:
    """Log out everywhere."""
    identity = await caller(request)
    await sessions.logout_all(runtime(request), identity, client_ip(request))
    return web.Response(status=204)


@routes.route(
    "GET",
    "/auth/sessions",
    summary="The caller's live sessions (created, last used, user agent, IP)",
    response=sessions.SessionList,
    errors=(401,),
)
async def list_sessions(request: web.Request) -> web.Response:
    """My sessions."""
    identity = await caller(request)
    return json_response(await sessions.list_sessions(runtime(request), identity))


@routes.route(
    "DELETE",
    "/auth/sessions/{sid}",
    summary="End one of the caller's sessions",
    status=204,
    errors=(401, 404),
)
async def end_session(request: web.Request) -> web.Response:
    """End one session."""
    identity = await caller(request)
    await sessions.end_one(
        runtime(request), identity, request.match_info["sid"], client_ip(request)
    )
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
