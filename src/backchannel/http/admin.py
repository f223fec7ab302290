"""`/admin/*`: roles, creator requests and the audit log, for admins."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import roles
from backchannel.http.requests import caller, read_body, runtime, validate
from backchannel.http.routing import RouteGroup, json_response
from backchannel.persistence.creator_requests import CreatorRequest
from backchannel.persistence.users import User

routes = RouteGroup(tag="admin")


def _query(request: web.Request) -> dict[str, str]:
    # `?cursor=` (empty) means no cursor.
    return {key: value for key, value in request.query.items() if value}


@routes.route(
    "POST",
    "/admin/users/{user_id}/role",
    summary="Give a user a role (fan, creator, moderator, admin)",
    body=roles.RoleChange,
    response=User,
    errors=(400, 401, 403, 404),
)
async def set_role(request: web.Request) -> web.Response:
    """Change a user's role."""
    admin = await caller(request)
    body = await read_body(request, roles.RoleChange)
    user_id = request.match_info["user_id"]
    return json_response(await roles.change_role(runtime(request), admin, user_id, body))


@routes.route(
    "GET",
    "/admin/creator-requests",
    summary="Creator sign-up requests (pending by default), oldest first",
    response=roles.CreatorRequestPage,
    query=roles.CreatorRequestQuery,
    errors=(400, 401, 403),
)
async def list_creator_requests(request: web.Request) -> web.Response:
    """Creator requests."""
    admin = await caller(request)
    q = validate(roles.CreatorRequestQuery, _query(request))
    return json_response(await roles.list_creator_requests(runtime(request), admin, q))


@routes.route(
    "POST",
    "/admin/creator-requests/{request_id}/approve",
    summary="Approve a creator request: the user becomes a creator and is notified",
    response=CreatorRequest,
    errors=(401, 403, 404),
)
async def approve(request: web.Request) -> web.Response:
    """Approve."""
    admin = await caller(request)
    return json_response(
        await roles.decide_creator_request(
            runtime(request), admin, request.match_info["request_id"], approve=True
        )
    )


@routes.route(
    "POST",
    "/admin/creator-requests/{request_id}/reject",
    summary="Reject a creator request: the user stays a fan and is notified",
    response=CreatorRequest,
    errors=(401, 403, 404),
)
async def reject(request: web.Request) -> web.Response:
    """Reject."""
    admin = await caller(request)
    return json_response(
        await roles.decide_creator_request(
            runtime(request), admin, request.match_info["request_id"], approve=False
        )
    )


@routes.route(
    "GET",
    "/admin/audit",
    summary="The audit log, newest first (logins, refresh reuse, session ends, role changes)",
    response=roles.AuditPage,
    query=roles.AuditQuery,
    errors=(400, 401, 403),
)
async def audit_log(request: web.Request) -> web.Response:
    """The audit log."""
    admin = await caller(request)
    q = validate(roles.AuditQuery, _query(request))
    return json_response(await roles.audit_log(runtime(request), admin, q))
