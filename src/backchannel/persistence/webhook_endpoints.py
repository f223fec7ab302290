"""Webhook endpoints: who registered what URL for which event types (by API key name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class Endpoint:
    """One registered endpoint (its secret only when asked for)."""

    id: int
    owner: str
    url: str
    events: list[str]
    description: str | None
    include_bodies: bool
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


_ENDPOINT_COLUMNS = (
    "id, owner, url, events, description, include_bodies, failing_since, disabled_at, "
    "disabled_reason, created_at, updated_at"
)


def _endpoint(row: Any) -> Endpoint:
    data = {name: row[name] for name in _ENDPOINT_COLUMNS.split(", ")}
    data["events"] = list(data["events"])
    return Endpoint(**data)


INSERT_ENDPOINT = f"""
insert into webhook_endpoints (owner, url, events, description, include_bodies, secret)
values ($1, $2, $3, $4, $5, $6)
returning {_ENDPOINT_COLUMNS}
"""


async def insert_endpoint(
    conn: Connection,
    *,
    owner: str,
    url: str,
    events: list[str],
    description: str | None,
    include_bodies: bool,
    secret: str,
) -> Endpoint:
    """Store a new endpoint."""
    row = await conn.fetchrow(
        INSERT_ENDPOINT, owner, url, events, description, include_bodies, secret
    )
    return _endpoint(row)


SELECT_ENDPOINTS = f"""
select {_ENDPOINT_COLUMNS} from webhook_endpoints where owner = $1 order by id
"""


async def list_endpoints(conn: Connection, owner: str) -> list[Endpoint]:
    """The owner's endpoints, oldest first."""
    return [_endpoint(row) for row in await conn.fetch(SELECT_ENDPOINTS, owner)]


SELECT_ENDPOINT = f"""
select {_ENDPOINT_COLUMNS} from webhook_endpoints where id = $1 and owner = $2
"""


async def get_endpoint(conn: Connection, endpoint_id: int, owner: str) -> Endpoint | None:
    """One of the owner's endpoints."""
    row = await conn.fetchrow(SELECT_ENDPOINT, endpoint_id, owner)
    return _endpoint(row) if row else None


UPDATE_ENDPOINT = f"""
update webhook_endpoints set
    url = coalesce($3, url),
    events = coalesce($4, events),
    description = case when $5 then $6 else description end,
    include_bodies = coalesce($7, include_bodies),
    disabled_at = case when $8::boolean is null then disabled_at when $8 then null else now() end,
    disabled_reason = case when $8 is null then disabled_reason when $8 then null
        else 'disabled by its owner' end,
    failing_since = case when $8 then null else failing_since end,
    updated_at = now()
where id = $1 and owner = $2
returning {_ENDPOINT_COLUMNS}
"""


async def update_endpoint(
    conn: Connection,
    endpoint_id: int,
    owner: str,
    *,
    url: str | None,
    events: list[str] | None,
    set_description: bool,
    description: str | None,
    include_bodies: bool | None,
    enabled: bool | None,
) -> Endpoint | None:
    """Change the given fields (None: unchanged); `enabled` re-enables or disables."""
    row = await conn.fetchrow(
        UPDATE_ENDPOINT,
        endpoint_id,
        owner,
        url,
        events,
        set_description,
        description,
        include_bodies,
        enabled,
    )
    return _endpoint(row) if row else None


DELETE_ENDPOINT = "delete from webhook_endpoints where id = $1 and owner = $2 returning id"


async def delete_endpoint(conn: Connection, endpoint_id: int, owner: str) -> bool:
    """Remove an endpoint and its deliveries; False if the owner has no such endpoint."""
    return await conn.fetchval(DELETE_ENDPOINT, endpoint_id, owner) is not None


SUBSCRIBED_TYPES = """
select coalesce(array_agg(distinct t), '{}') from webhook_endpoints, unnest(events) as t
where disabled_at is null
"""


async def subscribed_types(conn: Connection) -> frozenset[str]:
    """Every event type some live endpoint wants (`*` when one wants them all)."""
    return frozenset(await conn.fetchval(SUBSCRIBED_TYPES))


# One statement whatever the number of events and endpoints: events nobody subscribes to are
# not stored, and each stored event gets one delivery per live endpoint that wants it.
DISABLE_FAILING = f"""
with disabled as (
    update webhook_endpoints set disabled_at = now(), updated_at = now(),
        disabled_reason = 'every delivery failed for the retry window'
    where id = $1 and disabled_at is null
    returning {_ENDPOINT_COLUMNS}
), dropped as (
    update webhook_deliveries d set status = 'failed', lease_until = null, lease_token = null,
        last_error = coalesce(d.last_error, 'endpoint disabled')
    from disabled where d.endpoint_id = disabled.id and d.status = 'pending'
    returning 1
)
select * from disabled
"""


async def disable_failing(conn: Connection, endpoint_id: int) -> Endpoint | None:
    """Disable an endpoint that failed too long, failing its pending deliveries; None if it
    was already disabled (so exactly one caller goes on to tell its owner)."""
    row = await conn.fetchrow(DISABLE_FAILING, endpoint_id)
    return _endpoint(row) if row else None


SELECT_ADMINS = "select id from users where role = 'admin' and deleted_at is null order by id"


async def admin_ids(conn: Connection) -> list[str]:
    """Every live admin, who hears of endpoints disabled for failing."""
    return [str(row["id"]) for row in await conn.fetch(SELECT_ADMINS)]
