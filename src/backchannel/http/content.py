"""Creators' content: post, read whole or as a teaser, list."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field

from backchannel.domain import content
from backchannel.http.requests import caller, query, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="content")


class ContentQuery(BaseModel):
    """`?cursor=&limit=`."""

    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20


@routes.route(
    "POST",
    "/content",
    summary="Post content (creators): public, subscribers or ppv",
    body=content.ContentCreate,
    response=content.ContentView,
    status=201,
    errors=(400, 401, 403),
)
async def create(request: web.Request) -> web.Response:
    """The stored item, whole."""
    identity = await caller(request)
    body = await read_body(request, content.ContentCreate)
    item = await content.create(runtime(request), identity.user_id, identity.role, body)
    return json_response(item, 201)


@routes.route(
    "GET",
    "/content/{content_id}",
    summary="An item whole, or 402 payment_required with its teaser and how to pay",
    response=content.ContentView,
    errors=(401, 402, 404),
)
async def get_one(request: web.Request) -> web.Response:
    """The item, if the caller may see it."""
    identity = await caller(request)
    item = await content.get(runtime(request), identity.user_id, request.match_info["content_id"])
    return json_response(item)


@routes.route(
    "GET",
    "/creators/{creator_id}/content",
    summary="A creator's content, newest first; locked items as teasers",
    response=content.ContentPage,
    query=ContentQuery,
    errors=(400, 401, 404),
)
async def list_by_creator(request: web.Request) -> web.Response:
    """`{items, next_cursor}`."""
    identity = await caller(request)
    params = query(request, ContentQuery)
    page = await content.list_by_creator(
        runtime(request),
        identity.user_id,
        request.match_info["creator_id"],
        params.cursor,
        params.limit,
    )
    return json_response(page)
