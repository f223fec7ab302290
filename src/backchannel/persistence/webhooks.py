"""Outbound webhooks: the events written for endpoints, and their deliveries.

Events are written by one set-based statement per transaction (`record_events`): it stores
only events some live endpoint subscribes to, and a delivery row per matching endpoint.
Deliveries are claimed with `for update skip locked` plus a lease, so exactly one node
attempts a given (event, endpoint) at a time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its type, its data, and what only `include_bodies` endpoints get."""

    type: str
    data: dict[str, Any]
    private: dict[str, Any] | None = None


@dataclass(frozen=True)
class Delivery:
    """One (event, endpoint) delivery as its owner sees it."""

    id: int
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Claimed:
    """A delivery this node holds the lease of, with what it must send and where."""

    id: int
    attempts: int
    window_start: datetime
    event_id: uuid.UUID
    event_type: str
    data: dict[str, Any]
    private: dict[str, Any] | None
    event_created_at: datetime
    endpoint_id: int
    url: str
    secret: str
    include_bodies: bool


_RECORD_MATCHED = """
matched as (
    select i.* from input i
    where exists (
        select 1 from webhook_endpoints e
        where e.disabled_at is null and (i.type = any(e.events) or '*' = any(e.events))
    )
), ev as (
    insert into webhook_events (type, data, private)
    select type, data, private from matched
    returning id, type
), added as (
    insert into webhook_deliveries (event_id, endpoint_id)
    select ev.id, e.id from ev
    join webhook_endpoints e
        on e.disabled_at is null and (ev.type = any(e.events) or '*' = any(e.events))
    returning 1
)
select count(*) from added
"""

RECORD_EVENTS = f"""
with input as (
    select t.type, t.data::jsonb as data, t.private::jsonb as private
    from unnest($1::text[], $2::text[], $3::text[]) as t (type, data, private)
), {_RECORD_MATCHED}"""

# `message.created` for every copy of a paid broadcast, in the statement's transaction; the
# same fields as `domain.webhook_events.message_created`.
RECORD_BROADCAST_COPIES = f"""
with input as (
    select 'message.created'::text as type,
        jsonb_build_object(
            'message_id', m.id::text, 'conversation_id', m.conversation_id::text,
            'sender_id', m.sender_id, 'seq', m.seq, 'paid', m.price_cents is not null,
            'price_cents', m.price_cents, 'currency', m.currency,
            'media_count', jsonb_array_length(m.media), 'broadcast_id', m.broadcast_id::text,
            'created_at', to_jsonb(m.created_at)
        ) as data,
        jsonb_build_object('body', m.body, 'preview_text', m.preview_text) as private
    from messages m where m.broadcast_id = $1
), {_RECORD_MATCHED}"""


async def record_broadcast_copies(conn: Connection, broadcast_id: int) -> int:
    """`message.created` for each copy of a broadcast just settled; returns deliveries queued."""
    count: int = await conn.fetchval(RECORD_BROADCAST_COPIES, broadcast_id)
    return count


async def record_events(conn: Connection, events: Sequence[NewEvent]) -> int:
    """Store `events` for the endpoints that want them; returns the deliveries queued."""
    if not events:
        return 0
    count: int = await conn.fetchval(
        RECORD_EVENTS,
        [e.type for e in events],
        [to_json(e.data).decode() for e in events],
        [to_json(e.private).decode() if e.private is not None else None for e in events],
    )
    return count


CLAIM_DUE = """
with due as (
    select d.id from webhook_deliveries d
    join webhook_endpoints e on e.id = d.endpoint_id and e.disabled_at is null
    where d.status = 'pending' and d.next_attempt_at <= now()
        and (d.lease_until is null or d.lease_until < now())
    order by d.next_attempt_at, d.id
    limit $1
    for update of d skip locked
)
update webhook_deliveries d set
    lease_until = now() + make_interval(secs => $2),
    lease_token = $3,
    attempts = d.attempts + 1,
    last_attempt_at = now()
from due, webhook_events ev, webhook_endpoints e
where d.id = due.id and ev.id = d.event_id and e.id = d.endpoint_id
returning d.id, d.attempts, d.window_start, d.event_id, ev.type as event_type,
    ev.data::text as data, ev.private::text as private, ev.created_at as event_created_at,
    e.id as endpoint_id, e.url, e.secret, e.include_bodies
"""


async def claim_due(
    conn: Connection, limit: int, lease_seconds: float, token: uuid.UUID
) -> list[Claimed]:
    """Take up to `limit` due deliveries for `lease_seconds` under `token`."""
    rows = await conn.fetch(CLAIM_DUE, limit, lease_seconds, token)
    claimed = []
    for row in rows:
        data = dict(row.items())
        data["data"] = json.loads(data["data"])
        data["private"] = json.loads(data["private"]) if data["private"] else None
        claimed.append(Claimed(**data))
    return claimed


MARK_DELIVERED = """
with done as (
    update webhook_deliveries set status = 'delivered', delivered_at = now(),
        lease_until = null, lease_token = null, last_status = $3, last_error = null,
        last_latency_ms = $4
    where id = $1 and lease_token = $2 and status = 'pending'
    returning endpoint_id
)
update webhook_endpoints e set failing_since = null
from done where e.id = done.endpoint_id and e.failing_since is not null
"""


async def mark_delivered(
    conn: Connection, delivery_id: int, token: uuid.UUID, status: int, latency_ms: int
) -> None:
    """The attempt under `token` got a 2xx: delivered; its endpoint is healthy again."""
    await conn.execute(MARK_DELIVERED, delivery_id, token, status, latency_ms)


MARK_FAILED_ATTEMPT = """
with attempt as (
    update webhook_deliveries set
        status = case when $5 then 'failed' else 'pending' end,
        next_attempt_at = now() + make_interval(secs => $6),
        lease_until = null, lease_token = null, last_status = $3, last_error = $4,
        last_latency_ms = $7
    where id = $1 and lease_token = $2 and status = 'pending'
    returning endpoint_id, window_start
)
update webhook_endpoints e set failing_since = coalesce(e.failing_since, attempt.window_start)
from attempt where e.id = attempt.endpoint_id
returning e.id, e.failing_since <= now() - make_interval(secs => $8) as failing_too_long
"""


async def mark_failed_attempt(
    conn: Connection,
    delivery_id: int,
    token: uuid.UUID,
    *,
    status: int | None,
    error: str,
    give_up: bool,
    retry_in_seconds: float,
    latency_ms: int,
    window_seconds: float,
) -> bool:
    """Record a failed attempt (retried later, or `failed` when `give_up`); returns whether
    the endpoint has now been failing for longer than `window_seconds`. With no success
    since, an endpoint has been failing since the oldest event it could not take (the
    delivery's window start), so a delivery failing for the whole window fails its endpoint."""
    row = await conn.fetchrow(
        MARK_FAILED_ATTEMPT,
        delivery_id,
        token,
        status,
        error[:500],
        give_up,
        retry_in_seconds,
        latency_ms,
        window_seconds,
    )
    return bool(row and row["failing_too_long"])


_DELIVERY_COLUMNS = (
    "d.id, d.event_id, ev.type as event_type, d.status, d.attempts, "
    "case when d.status = 'pending' then d.next_attempt_at end as next_attempt_at, "
    "d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(**dict(row.items()))


SELECT_DELIVERIES = f"""
select {_DELIVERY_COLUMNS}
from webhook_deliveries d join webhook_events ev on ev.id = d.event_id
where d.endpoint_id = $1 and ($2::bigint is null or d.id < $2)
    and ($3::text is null or d.status = $3)
order by d.id desc
limit $4
"""


async def list_deliveries(
    conn: Connection, endpoint_id: int, *, before: int | None, status: str | None, limit: int
) -> list[Delivery]:
    """An endpoint's deliveries, newest first, before the cursor id."""
    rows = await conn.fetch(SELECT_DELIVERIES, endpoint_id, before, status, limit)
    return [_delivery(row) for row in rows]


RETRY_DELIVERY = f"""
with retried as (
    update webhook_deliveries set status = 'pending', next_attempt_at = now(),
        window_start = now()
    where id = $1 and endpoint_id = $2 and lease_token is null
    returning *
)
select {_DELIVERY_COLUMNS}
from retried d join webhook_events ev on ev.id = d.event_id
"""


async def retry_delivery(conn: Connection, delivery_id: int, endpoint_id: int) -> Delivery | None:
    """Queue a delivery for an attempt now (none while one is in flight)."""
    row = await conn.fetchrow(RETRY_DELIVERY, delivery_id, endpoint_id)
    return _delivery(row) if row else None


SELECT_DELIVERY = f"""
select {_DELIVERY_COLUMNS}, d.lease_token is not null as in_flight
from webhook_deliveries d join webhook_events ev on ev.id = d.event_id
where d.id = $1 and d.endpoint_id = $2
"""


async def get_delivery(
    conn: Connection, delivery_id: int, endpoint_id: int
) -> tuple[Delivery, bool] | None:
    """One delivery of an endpoint and whether an attempt of it is in flight."""
    row = await conn.fetchrow(SELECT_DELIVERY, delivery_id, endpoint_id)
    if row is None:
        return None
    data = dict(row.items())
    in_flight = bool(data.pop("in_flight"))
    return Delivery(**data), in_flight


PRUNE_EVENTS = """
with old as (
    select e.id from webhook_events e
    where e.created_at < now() - make_interval(secs => $1)
        and not exists (
            select 1 from webhook_deliveries d where d.event_id = e.id and d.status = 'pending'
        )
    order by e.created_at
    limit $2
)
delete from webhook_events e using old where e.id = old.id
"""


async def prune_events(conn: Connection, older_than_seconds: float, limit: int) -> int:
    """Delete up to `limit` events older than this with nothing pending (their deliveries go
    with them); returns how many."""
    status: str = await conn.execute(PRUNE_EVENTS, older_than_seconds, limit)
    return int(status.split()[-1])


BACKLOG = """
select count(*) as pending,
    coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest
from webhook_deliveries where status = 'pending'
"""


async def backlog(conn: Connection) -> tuple[int, float]:
    """Pending deliveries and the age in seconds of the oldest (0 when none)."""
    row = await conn.fetchrow(BACKLOG)
    return int(row["pending"]), float(row["oldest"])
