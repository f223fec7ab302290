"""Creator sign-up requests awaiting an admin (`BACKCHANNEL_CREATOR_SIGNUP=approval`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from backchannel.persistence.database import Connection

RequestStatus = Literal["pending", "approved", "rejected"]


class CreatorRequest(BaseModel):
    """A user's request to become a creator."""

    id: UUID
    user_id: str
    display_name: str
    email: str | None
    status: RequestStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


INSERT_REQUEST = """
insert into creator_requests (user_id) values ($1)
on conflict (user_id) where status = 'pending' do nothing
"""


async def insert_request(conn: Connection, user_id: str) -> None:
    """Open a pending request (one per user at a time)."""
    await conn.execute(INSERT_REQUEST, user_id)


_COLUMNS = """r.id, r.user_id, u.display_name, u.email, r.status, r.created_at, r.decided_at,
       r.decided_by"""

SELECT_PAGE = f"""
select {_COLUMNS}
from creator_requests r join users u on u.id = r.user_id
where r.status = $1 and ($2::timestamptz is null or (r.created_at, r.id) > ($2, $3::uuid))
order by r.created_at, r.id
limit $4
"""


async def page(
    conn: Connection,
    status: RequestStatus,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[CreatorRequest]:
    """Requests in this status, oldest first, after the keyset cursor."""
    rows = await conn.fetch(
        SELECT_PAGE, status, after[0] if after else None, after[1] if after else None, limit
    )
    return [CreatorRequest.model_validate(dict(row)) for row in rows]


DECIDE = f"""
with decided as (
    update creator_requests set status = $2, decided_at = now(), decided_by = $3
    where id = $1 and status = 'pending'
    returning *
)
select {_COLUMNS} from decided r join users u on u.id = r.user_id
"""


async def decide(
    conn: Connection, request_id: UUID, status: RequestStatus, admin_id: str
) -> CreatorRequest | None:
    """Approve or reject a pending request; None when it is unknown or already decided."""
    row = await conn.fetchrow(DECIDE, request_id, status, admin_id)
    return CreatorRequest.model_validate(dict(row)) if row else None
