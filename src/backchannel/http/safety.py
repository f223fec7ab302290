"""Safety routes: blocks, mutes, reports, and the moderators' queue, filters and bans."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import bans, blocks, conversations, reports, screening
from backchannel.domain.chat_views import Conversation
from backchannel.domain.filters import FilterRules
from backchannel.http.requests import caller, read_body, runtime, validate
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="safety")


@routes.route(
    "POST",
    "/blocks",
    summary="Block a user: nothing of theirs reaches you; neither of you can DM the other",
    body=blocks.BlockRequest,
    response=blocks.BlockView,
    status=201,
    errors=(400, 401, 404),
)
async def block(request: web.Request) -> web.Response:
    """Block a user."""
    identity = await caller(request)
    body = await read_body(request, blocks.BlockRequest)
    return json_response(await blocks.block(runtime(request), identity.user_id, body), 201)


@routes.route(
    "DELETE",
    "/blocks/{user_id}",
    summary="Unblock a user: what they send from now on reaches you again (not the past)",
    status=204,
    errors=(401, 404),
)
async def unblock(request: web.Request) -> web.Response:
    """Unblock a user."""
    identity = await caller(request)
    await blocks.unblock(runtime(request), identity.user_id, request.match_info["user_id"])
    return web.Response(status=204)


@routes.route(
    "GET",
    "/blocks",
    summary="Everyone the caller blocks, newest first",
    response=blocks.BlockList,
    errors=(401,),
)
async def list_blocks(request: web.Request) -> web.Response:
    """The caller's blocks."""
    identity = await caller(request)
    return json_response(await blocks.list_blocks(runtime(request), identity.user_id))


@routes.route(
    "POST",
    "/conversations/{conversation_id}/mute",
    summary="Mute a conversation (until a time, or until unmuted): no message notifications",
    body=conversations.MuteRequest,
    response=Conversation,
    errors=(400, 401, 403, 404),
)
async def mute(request: web.Request) -> web.Response:
    """Mute a conversation."""
    identity = await caller(request)
    body = await read_body(request, conversations.MuteRequest)
    cid = request.match_info["conversation_id"]
    return json_response(await conversations.mute(runtime(request), identity.user_id, cid, body))


@routes.route(
    "DELETE",
    "/conversations/{conversation_id}/mute",
    summary="Unmute a conversation",
    response=Conversation,
    errors=(401, 403, 404),
)
async def unmute(request: web.Request) -> web.Response:
    """Unmute a conversation."""
    identity = await caller(request)
    cid = request.match_info["conversation_id"]
    return json_response(await conversations.mute(runtime(request), identity.user_id, cid, None))


@routes.route(
    "POST",
    "/reports",
    summary="Report a message, user, conversation or content you can see (a repeat is the "
    "same report: 200)",
    body=reports.ReportRequest,
    response=reports.ReportCreated,
    status=201,
    errors=(400, 401, 403, 404),
)
async def report(request: web.Request) -> web.Response:
    """Report something."""
    identity = await caller(request)
    body = await read_body(request, reports.ReportRequest)
    made, created = await reports.create_report(runtime(request), identity.user_id, body)
    return json_response(made, 201 if created else 200)


def _query(request: web.Request) -> dict[str, str]:
    return {key: value for key, value in request.query.items() if value}


@routes.route(
    "GET",
    "/admin/reports",
    summary="The report queue (moderators): urgent first, with the message as stored, the "
    "reporter and the target's recent history",
    response=reports.ReportPage,
    query=reports.ReportQuery,
    errors=(400, 401, 403),
)
async def list_reports(request: web.Request) -> web.Response:
    """The report queue."""
    identity = await caller(request)
    q = validate(reports.ReportQuery, _query(request))
    return json_response(await reports.list_reports(runtime(request), identity, q))


@routes.route(
    "POST",
    "/admin/reports/{report_id}/resolve",
    summary="Resolve a report (moderators): dismiss, delete_message or ban_user",
    body=reports.ResolveRequest,
    response=reports.ReportView,
    errors=(400, 401, 403, 404, 409),
)
async def resolve_report(request: web.Request) -> web.Response:
    """Resolve a report."""
    identity = await caller(request)
    body = await read_body(request, reports.ResolveRequest)
    rid = request.match_info["report_id"]
    return json_response(await reports.resolve_report(runtime(request), identity, rid, body))


@routes.route(
    "GET",
    "/admin/filters",
    summary="The content filters (admins): blocked words and phrases, link rules",
    response=FilterRules,
    errors=(401, 403),
)
async def get_filters(request: web.Request) -> web.Response:
    """The filters."""
    identity = await caller(request)
    return json_response(await screening.get_filters(runtime(request), identity))


@routes.route(
    "PUT",
    "/admin/filters",
    summary="Replace the content filters (admins)",
    body=FilterRules,
    response=FilterRules,
    errors=(400, 401, 403),
)
async def put_filters(request: web.Request) -> web.Response:
    """Replace the filters."""
    identity = await caller(request)
    body = await read_body(request, FilterRules)
    return json_response(await screening.put_filters(runtime(request), identity, body))


@routes.route(
    "POST",
    "/admin/users/{user_id}/ban",
    summary="Ban a user (moderators): every socket ends, tokens and logins are refused",
    body=bans.BanRequest,
    response=bans.BanView,
    errors=(400, 401, 403, 404),
)
async def ban(request: web.Request) -> web.Response:
    """Ban a user."""
    identity = await caller(request)
    body = await read_body(request, bans.BanRequest)
    uid = request.match_info["user_id"]
    return json_response(await bans.ban_user(runtime(request), identity, uid, body))


@routes.route(
    "DELETE",
    "/admin/users/{user_id}/ban",
    summary="Lift a ban (moderators)",
    status=204,
    errors=(401, 403, 404),
)
async def unban(request: web.Request) -> web.Response:
    """Lift a ban."""
    identity = await caller(request)
    await bans.unban_user(runtime(request), identity, request.match_info["user_id"])
    return web.Response(status=204)
