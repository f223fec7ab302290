"""`/notifications*` for users, and `POST /publish` for other backends (API keys)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backchannel.domain import api_keys, notification_inbox, notifications
from backchannel.domain.notification_models import (
    NotificationId,
    Preferences,
    PublishRequest,
    PublishResult,
    ReadRequest,
    SyncPage,
    SyncRequest,
    UnreadCount,
)
from backchannel.http.requests import bearer_token, caller, query, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="notifications")


class _ListQuery(BaseModel):
    """`?cursor=&limit=`: the cursor is `notifications:sync`'s `after`."""

    model_config = ConfigDict(extra="ignore")
    cursor: NotificationId | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50

    @field_validator("cursor", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return value or None


@routes.route(
    "GET",
    "/notifications",
    summary="Your notifications after a cursor, oldest first, with the unread count",
    response=SyncPage,
    query=_ListQuery,
    errors=(400, 401),
)
async def list_notifications(request: web.Request) -> web.Response:
    """The caller's notifications (same as `notifications:sync`; `cursor` is `after`)."""
    identity = await caller(request)
    page = query(request, _ListQuery)
    sync = SyncRequest(after=page.cursor, limit=page.limit)
    return json_response(await notification_inbox.sync(runtime(request), identity.user_id, sync))


@routes.route(
    "POST",
    "/notifications/read",
    summary="Mark some (ids) or all of your notifications read",
    body=ReadRequest,
    response=UnreadCount,
    errors=(400, 401),
)
async def read(request: web.Request) -> web.Response:
    """Mark read; answers the new unread count."""
    identity = await caller(request)
    body = await read_body(request, ReadRequest)
    rt = runtime(request)
    return json_response(await notification_inbox.mark_read(rt, identity.user_id, body))


@routes.route(
    "GET",
    "/notifications/preferences",
    summary="Your muted notification types",
    response=Preferences,
    errors=(401,),
)
async def get_preferences(request: web.Request) -> web.Response:
    """The caller's preferences."""
    identity = await caller(request)
    rt = runtime(request)
    return json_response(await notification_inbox.get_preferences(rt, identity.user_id))


@routes.route(
    "PUT",
    "/notifications/preferences",
    summary="Replace your muted notification types (stored, not pushed live)",
    body=Preferences,
    response=Preferences,
    errors=(400, 401),
)
async def put_preferences(request: web.Request) -> web.Response:
    """Replace the caller's preferences."""
    identity = await caller(request)
    body = await read_body(request, Preferences)
    rt = runtime(request)
    return json_response(await notification_inbox.set_preferences(rt, identity.user_id, body))


@routes.route(
    "POST",
    "/publish",
    summary="Notify users or a creator's subscribers (server API key)",
    body=PublishRequest,
    response=PublishResult,
    status=202,
    auth="apiKey",
    errors=(400, 401),
)
async def publish(request: web.Request) -> web.Response:
    """Store for every recipient, then deliver live; answers 202 {id, recipients, skipped?}."""
    rt = runtime(request)
    key = await api_keys.authenticate_key(rt.db, bearer_token(request))
    body = await read_body(request, PublishRequest)
    result = await notifications.publish(rt, key.name, body)
    return json_response(result.model_dump(exclude_none=True), status=202)
