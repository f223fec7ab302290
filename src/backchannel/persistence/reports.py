"""Reports of messages, users, conversations and content, and their resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class Report:
    """A stored report."""

    id: int
    reporter_id: str | None
    target_type: str
    target_id: str
    reason: str
    note: str | None
    urgent: bool
    status: str
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


_COLUMNS = (
    "id, reporter_id, target_type, target_id, reason, note, urgent, status, resolution, "
    "resolved_by, resolved_at, created_at"
)

# A repeat by the same reporter on the same target is the first report (`created` false).
INSERT_REPORT = f"""
with made as (
    insert into reports (reporter_id, target_type, target_id, reason, note, urgent)
    values ($1, $2, $3, $4, $5, $6)
    on conflict (reporter_id, target_type, target_id) do nothing
    returning {_COLUMNS}, true as created
)
select * from made
union all
select {_COLUMNS}, false as created from reports
where reporter_id = $1 and target_type = $2 and target_id = $3
limit 1
"""


async def insert_report(
    conn: Connection,
    *,
    reporter_id: str | None,
    target_type: str,
    target_id: str,
    reason: str,
    note: str | None,
    urgent: bool,
) -> tuple[Report, bool]:
    """Open a report (or find the reporter's earlier one); True when it is new."""
    row = await conn.fetchrow(
        INSERT_REPORT, reporter_id, target_type, target_id, reason, note, urgent
    )
    assert row is not None
    data = dict(row.items())
    created = bool(data.pop("created"))
    return Report(**data), created


SELECT_PAGE = f"""
select {_COLUMNS} from reports
where ($1::text is null or status = $1)
  and ($2::int is null or (not urgent, id) > ($2::int = 0, $3::bigint))
order by urgent desc, id
limit $4
"""


async def page(
    conn: Connection, status: str | None, after: tuple[bool, int] | None, limit: int
) -> list[Report]:
    """Reports, urgent ones first, then oldest first; `after` is (urgent, id) of the last seen."""
    urgent_flag = None if after is None else (1 if after[0] else 0)
    after_id = None if after is None else after[1]
    rows = await conn.fetch(SELECT_PAGE, status, urgent_flag, after_id, limit)
    return [Report(**dict(r.items())) for r in rows]


SELECT_ONE = f"select {_COLUMNS} from reports where id = $1 for update"


async def lock_report(conn: Connection, report_id: int) -> Report | None:
    """One report, row-locked for resolving."""
    row = await conn.fetchrow(SELECT_ONE, report_id)
    return Report(**dict(row.items())) if row else None


RESOLVE = f"""
update reports set status = 'resolved', resolution = $2, resolved_by = $3,
    resolved_at = now()
where id = $1
returning {_COLUMNS}
"""


async def resolve(conn: Connection, report_id: int, resolution: str, moderator_id: str) -> Report:
    """Mark a report resolved with what was done (the moderator's note is in the audit log)."""
    row = await conn.fetchrow(RESOLVE, report_id, resolution, moderator_id)
    assert row is not None
    return Report(**dict(row.items()))
