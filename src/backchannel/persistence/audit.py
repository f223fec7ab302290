"""The audit log: who did what to whom, appended inside the transaction that did it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backchannel.persistence.database import Connection


class AuditEntry(BaseModel):
    """One audited action."""

    id: int
    at: datetime
    actor_id: str | None
    action: str
    target_id: str | None
    ip: str | None
    details: dict[str, Any]


INSERT_ENTRY = """
insert into audit_log (actor_id, action, target_id, ip, details)
values ($1, $2, $3, $4, $5::jsonb)
"""


async def audit(
    conn: Connection,
    action: str,
    *,
    actor_id: str | None = None,
    target_id: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an entry; `action` is a dotted name such as `login.failed` or `role.changed`."""
    await conn.execute(
        INSERT_ENTRY, actor_id, action, target_id, ip, json.dumps(details or {}, default=str)
    )


SELECT_PAGE = """
select id, at, actor_id, action, target_id, ip, details from audit_log
where ($1::bigint is null or id < $1)
  and ($2::text is null or actor_id = $2)
  and ($3::text is null or action = $3)
order by id desc
limit $4
"""


async def page(
    conn: Connection,
    *,
    before_id: int | None,
    actor_id: str | None,
    action: str | None,
    limit: int,
) -> list[AuditEntry]:
    """Entries newest first, before `before_id`, filtered by actor and action."""
    rows = await conn.fetch(SELECT_PAGE, before_id, actor_id, action, limit)
    return [
        AuditEntry.model_validate({**dict(row), "details": json.loads(row["details"])})
        for row in rows
    ]
