"""Webhook endpoints as a platform backend manages them with its server API key.

An endpoint belongs to the API key (by name) that created it: another key neither sees nor
changes it. The signing secret is shown once, in the answer to the create.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from backchannel.domain.webhook_events import ALL, EVENT_TYPES, changes_channel
from backchannel.errors import Conflict, Invalid, NotFound
from backchannel.inputs import MediaUrl, require_https
from backchannel.persistence import webhook_endpoints as endpoints_store
from backchannel.persistence import webhooks as store
from backchannel.persistence.webhook_endpoints import Endpoint
from backchannel.persistence.webhooks import Delivery

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
DELIVERIES_PAGE_DEFAULT, DELIVERIES_PAGE_MAX = 50, 100
MAX_ENDPOINTS_PER_KEY = 50

EventType = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(strict=True, max_length=500)]
DeliveryStatus = Literal["pending", "delivered", "failed"]


def _check_events(events: list[str]) -> list[str]:
    unknown = [(i, e) for i, e in enumerate(events) if e != ALL and e not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type {unknown[0][1]!r}; known: {', '.join(EVENT_TYPES)} or '*'"
        )
    if ALL in events and len(events) > 1:
        raise ValueError("'*' stands alone")
    return list(dict.fromkeys(events))


class EndpointCreate(BaseModel):
    """`POST /webhook-endpoints`."""

    model_config = ConfigDict(extra="forbid")
    url: MediaUrl
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
    description: Description | None = None
    include_bodies: bool = False

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _check_events(value)


class EndpointPatch(BaseModel):
    """`PATCH /webhook-endpoints/{id}`: only the fields given change; `enabled: true`
    re-enables an endpoint disabled for failing."""

    model_config = ConfigDict(extra="forbid")
    url: MediaUrl | None = None
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))] | None = (
        None
    )
    description: Description | None = None
    include_bodies: bool | None = None
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


class EndpointView(BaseModel):
    """An endpoint as its owner sees it (never its secret)."""

    id: str
    url: str
    events: list[str]
    description: str | None
    include_bodies: bool
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Endpoint) -> EndpointView:
        """The view of a stored endpoint."""
        return cls(
            id=str(row.id),
            url=row.url,
            events=row.events,
            description=row.description,
            include_bodies=row.include_bodies,
            enabled=row.disabled_at is None,
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EndpointCreated(EndpointView):
    """The answer to a create: the endpoint and its signing secret, shown this once."""

    secret: str


class EndpointList(BaseModel):
    """`GET /webhook-endpoints`."""

    items: list[EndpointView]


class DeliveryView(BaseModel):
    """One delivery of one event to one endpoint."""

    id: str
    event_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Delivery) -> DeliveryView:
        """The view of a stored delivery."""
        return cls(
            id=str(row.id),
            event_id=str(row.event_id),
            type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            last_status=row.last_status,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )


class DeliveryPage(BaseModel):
    """`GET /webhook-endpoints/{id}/deliveries`: newest first; `next_cursor` pages on."""

    items: list[DeliveryView]
    next_cursor: str | None


class DeliveriesQuery(BaseModel):
    """`?cursor=&status=&limit=`."""

    model_config = ConfigDict(extra="ignore")
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None = None
    status: DeliveryStatus | None = None
    limit: Annotated[int, Field(ge=1, le=DELIVERIES_PAGE_MAX)] = DELIVERIES_PAGE_DEFAULT

    @field_validator("cursor", "status", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return value or None


def parse_id(text: str, what: str) -> int:
    """A stored id from the path; anything else is simply not found."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound(f"no such {what}")
    return int(text)


def _check_url(rt: Runtime, url: str | None) -> None:
    if url is not None:
        require_https([("url", url)], dev=rt.settings.env == "dev")


async def _changed(rt: Runtime) -> None:
    """Endpoints changed: this node re-reads now, and tells the others to (they would
    otherwise see it within the refresh period)."""
    if rt.webhooks is not None:
        await rt.webhooks.refresh()
    if rt.redis is not None:
        try:
            await rt.redis.publish(changes_channel(rt.settings.redis_prefix), rt.node_id)
        except Exception as exc:
            log.warning("could not announce a webhook endpoint change: %s", exc)


async def create(rt: Runtime, owner: str, request: EndpointCreate) -> EndpointCreated:
    """Register an endpoint; its secret is in this answer only."""
    _check_url(rt, request.url)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with rt.db.transaction() as conn:
        if len(await endpoints_store.list_endpoints(conn, owner)) >= MAX_ENDPOINTS_PER_KEY:
            raise Conflict(f"at most {MAX_ENDPOINTS_PER_KEY} endpoints per API key")
        row = await endpoints_store.insert_endpoint(
            conn,
            owner=owner,
            url=request.url,
            events=request.events,
            description=request.description,
            include_bodies=request.include_bodies,
            secret=secret,
        )
    await _changed(rt)
    return EndpointCreated(**EndpointView.of(row).model_dump(), secret=secret)


async def list_mine(rt: Runtime, owner: str) -> EndpointList:
    """The key's endpoints."""
    async with rt.db.connection() as conn:
        rows = await endpoints_store.list_endpoints(conn, owner)
    return EndpointList(items=[EndpointView.of(row) for row in rows])


async def get(rt: Runtime, owner: str, endpoint_id: int) -> EndpointView:
    """One of the key's endpoints."""
    async with rt.db.connection() as conn:
        row = await endpoints_store.get_endpoint(conn, endpoint_id, owner)
    if row is None:
        raise NotFound("no such webhook endpoint")
    return EndpointView.of(row)


async def update(rt: Runtime, owner: str, endpoint_id: int, request: EndpointPatch) -> EndpointView:
    """Change an endpoint's URL, events, description, bodies or enabled state."""
    given = request.model_fields_set
    for name in ("url", "events", "include_bodies", "enabled"):
        if name in given and getattr(request, name) is None:
            raise Invalid("invalid input", [{"field": name, "message": "must not be null"}])
    _check_url(rt, request.url)
    async with rt.db.transaction() as conn:
        row = await endpoints_store.update_endpoint(
            conn,
            endpoint_id,
            owner,
            url=request.url,
            events=request.events,
            set_description="description" in given,
            description=request.description,
            include_bodies=request.include_bodies,
            enabled=request.enabled,
        )
    if row is None:
        raise NotFound("no such webhook endpoint")
    await _changed(rt)
    return EndpointView.of(row)


async def delete(rt: Runtime, owner: str, endpoint_id: int) -> None:
    """Remove an endpoint; its undelivered events go with it."""
    async with rt.db.transaction() as conn:
        deleted = await endpoints_store.delete_endpoint(conn, endpoint_id, owner)
    if not deleted:
        raise NotFound("no such webhook endpoint")
    await _changed(rt)


async def deliveries(rt: Runtime, owner: str, endpoint_id: int, q: DeliveriesQuery) -> DeliveryPage:
    """An endpoint's deliveries, newest first, optionally of one status."""
    async with rt.db.connection() as conn:
        if await endpoints_store.get_endpoint(conn, endpoint_id, owner) is None:
            raise NotFound("no such webhook endpoint")
        rows = await store.list_deliveries(
            conn,
            endpoint_id,
            before=int(q.cursor) if q.cursor else None,
            status=q.status,
            limit=q.limit + 1,
        )
    page = rows[: q.limit]
    return DeliveryPage(
        items=[DeliveryView.of(row) for row in page],
        next_cursor=str(page[-1].id) if len(rows) > q.limit else None,
    )


async def retry(rt: Runtime, owner: str, endpoint_id: int, delivery_id: int) -> DeliveryView:
    """Attempt a delivery again now, whatever its status (its retry window starts over)."""
    async with rt.db.transaction() as conn:
        endpoint = await endpoints_store.get_endpoint(conn, endpoint_id, owner)
        if endpoint is None:
            raise NotFound("no such webhook endpoint")
        if endpoint.disabled_at is not None:
            raise Conflict("the endpoint is disabled; enable it first (PATCH enabled: true)")
        found = await store.get_delivery(conn, delivery_id, endpoint_id)
        if found is None:
            raise NotFound("no such delivery")
        if found[1]:
            raise Conflict("an attempt of this delivery is in flight")
        row = await store.retry_delivery(conn, delivery_id, endpoint_id)
    if row is None:
        raise Conflict("an attempt of this delivery is in flight")
    if rt.webhooks is not None:
        rt.webhooks.wake()
    return DeliveryView.of(row)
