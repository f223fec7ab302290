"""Media: upload targets, completion, fresh renderings, deletion; and the signed file routes.

`files` (outside `/api/v1`) serves the local store: the signed upload `PUT`, which streams the
body to disk, and the per-viewer signed `GET`, which answers a file (ranges supported) or a
redirect to a short-lived storage URL.
"""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import media, vault
from backchannel.domain.auth import authenticate
from backchannel.domain.media_views import MediaView
from backchannel.errors import BackchannelError, Forbidden
from backchannel.http.requests import bearer_token, caller, query, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response
from backchannel.media.store import CHUNK_BYTES

routes = RouteGroup(tag="media")
files = RouteGroup(tag="media files", prefix="")

_LINK_QUERY = ("exp", "v", "sig")


@routes.route(
    "POST",
    "/media",
    summary="Start an upload: a pending item and a short-lived signed PUT target",
    body=media.UploadRequest,
    response=media.UploadTicket,
    status=201,
    errors=(400, 401, 413),
)
async def create_upload(request: web.Request) -> web.Response:
    """`{media_id, status: "pending", upload: {method, url, headers}, expires_at}`."""
    identity = await caller(request)
    body = await read_body(request, media.UploadRequest)
    return json_response(await media.create_upload(runtime(request), identity.user_id, body), 201)


@routes.route(
    "POST",
    "/media/{media_id}/complete",
    summary="Check the uploaded bytes' real type and process them (media:ready follows)",
    response=media.MediaStatus,
    errors=(400, 401, 404, 409, 413),
)
async def complete(request: web.Request) -> web.Response:
    """The processed item's status."""
    identity = await caller(request)
    status = await media.complete(
        runtime(request), identity.user_id, request.match_info["media_id"]
    )
    return json_response(status)


@routes.route(
    "GET",
    "/media/{media_id}",
    summary="A fresh rendering with links signed for the caller, if entitled",
    response=MediaView,
    errors=(401, 402, 403, 404),
)
async def get_one(request: web.Request) -> web.Response:
    """The item with new links; 402 with the way to pay, or 403."""
    identity = await caller(request)
    view = await media.rendering(runtime(request), identity.user_id, request.match_info["media_id"])
    return json_response(view)


@routes.route(
    "DELETE",
    "/media/{media_id}",
    summary="Delete media that was never sent (sent media: retire it)",
    status=204,
    errors=(401, 404, 409),
)
async def delete(request: web.Request) -> web.Response:
    """204; 409 with the retire route when it has been sent."""
    identity = await caller(request)
    await media.remove(runtime(request), identity.user_id, request.match_info["media_id"])
    return web.Response(status=204)


@routes.route(
    "POST",
    "/media/{media_id}/retire",
    summary="Retire media: no new sends; everyone entitled keeps access",
    response=media.MediaStatus,
    errors=(401, 404),
)
async def retire(request: web.Request) -> web.Response:
    """The item's status, `retired: true`."""
    identity = await caller(request)
    status = await media.retire(runtime(request), identity.user_id, request.match_info["media_id"])
    return json_response(status)


def _link(request: web.Request) -> tuple[str, str, str]:
    exp, viewer, sig = (request.query.get(name, "") for name in _LINK_QUERY)
    return exp, viewer, sig


@files.route(
    "PUT",
    "/media/{media_id}/upload",
    summary="The local store's signed upload target: the body is streamed to disk",
    status=204,
    auth=None,
    query=_LINK_QUERY,
    errors=(403, 404, 409, 413),
)
async def upload(request: web.Request) -> web.Response:
    """204 once every byte is on disk."""
    await media.receive_upload(
        runtime(request),
        request.match_info["media_id"],
        _link(request),
        request.content_length,
        request.content.iter_chunked(CHUNK_BYTES),
    )
    return web.Response(status=204)


@files.route(
    "GET",
    "/media/{media_id}/{variant}",
    summary="A signed, expiring, per-viewer media link (Cache-Control: private; ranges)",
    auth=None,
    query=_LINK_QUERY,
    errors=(403, 404),
)
async def download(request: web.Request) -> web.StreamResponse:
    """The bytes, or a redirect to a storage URL that expires within a minute."""
    rt = runtime(request)
    requester = None
    token = bearer_token(request)
    if token is not None:
        try:
            requester = (await authenticate(rt, token)).user_id
        except BackchannelError:
            raise Forbidden("this media link cannot be used with that token") from None
    found = await media.deliver(
        rt, request.match_info["media_id"], request.match_info["variant"], _link(request), requester
    )
    headers = {
        "Cache-Control": f"private, max-age={found.max_age}",
        "Content-Type": found.content_type,
        "X-Content-Type-Options": "nosniff",
    }
    if found.redirect is not None:
        raise web.HTTPFound(found.redirect, headers={"Cache-Control": "private, no-store"})
    assert found.path is not None
    return web.FileResponse(found.path, headers=headers)


@routes.route(
    "GET",
    "/vault",
    summary="The creator's ready media, newest first, with sends, unlocks and revenue",
    response=vault.VaultPage,
    query=vault.VaultQuery,
    errors=(400, 401, 403),
)
async def list_vault(request: web.Request) -> web.Response:
    """`{items, next_cursor}`."""
    identity = await caller(request)
    params = query(request, vault.VaultQuery)
    page = await vault.list_vault(runtime(request), identity.user_id, identity.role, params)
    return json_response(page)


@routes.route(
    "GET",
    "/vault/{media_id}/fans",
    summary="Every fan one item was sent to: sent or unlocked, with the messages",
    response=vault.FansPage,
    query=vault.PageQuery,
    errors=(400, 401, 403, 404),
)
async def fans_of_media(request: web.Request) -> web.Response:
    """`{items, next_cursor}`."""
    identity = await caller(request)
    params = query(request, vault.PageQuery)
    page = await vault.fans_of_media(
        runtime(request), identity.user_id, identity.role, request.match_info["media_id"], params
    )
    return json_response(page)


@routes.route(
    "GET",
    "/fans/{fan_id}/media",
    summary="For a creator: everything of theirs this fan was sent, offered and bought",
    response=vault.FanMediaPage,
    query=vault.PageQuery,
    errors=(400, 401, 403),
)
async def media_of_fan(request: web.Request) -> web.Response:
    """`{items, next_cursor}`."""
    identity = await caller(request)
    params = query(request, vault.PageQuery)
    page = await vault.media_of_fan(
        runtime(request), identity.user_id, identity.role, request.match_info["fan_id"], params
    )
    return json_response(page)
