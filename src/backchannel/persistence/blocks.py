"""Blocks between users: one row per block period, the current one open (`ended_at` null)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class Block:
    """A user the caller blocks, and since when."""

    user_id: str
    created_at: datetime


INSERT_BLOCK = """
with made as (
    insert into user_blocks (blocker_id, blocked_id) values ($1, $2)
    on conflict (blocker_id, blocked_id) where ended_at is null do nothing
    returning blocked_id, started_at
)
select blocked_id, started_at from made
union all
select blocked_id, started_at from user_blocks
where blocker_id = $1 and blocked_id = $2 and ended_at is null
limit 1
"""


async def insert_block(conn: Connection, blocker_id: str, blocked_id: str) -> Block:
    """Start blocking (a repeat keeps the block already there)."""
    row = await conn.fetchrow(INSERT_BLOCK, blocker_id, blocked_id)
    assert row is not None
    return Block(user_id=row["blocked_id"], created_at=row["started_at"])


END_BLOCK = """
update user_blocks set ended_at = clock_timestamp()
where blocker_id = $1 and blocked_id = $2 and ended_at is null
returning id
"""


async def end_block(conn: Connection, blocker_id: str, blocked_id: str) -> bool:
    """End the current block; False when there was none."""
    return await conn.fetchval(END_BLOCK, blocker_id, blocked_id) is not None


SELECT_BLOCKS = """
select blocked_id, started_at from user_blocks
where blocker_id = $1 and ended_at is null
order by started_at desc, id desc
"""


async def blocks_of(conn: Connection, blocker_id: str) -> list[Block]:
    """Everyone `blocker_id` blocks now, newest first."""
    rows = await conn.fetch(SELECT_BLOCKS, blocker_id)
    return [Block(user_id=r["blocked_id"], created_at=r["started_at"]) for r in rows]


SELECT_RELATIONS = """
select blocker_id, blocked_id from user_blocks
where ended_at is null and (blocker_id = $1 or blocked_id = $1)
"""


async def relations(conn: Connection, user_id: str) -> tuple[set[str], set[str]]:
    """(who `user_id` blocks, who blocks `user_id`), now."""
    blocks: set[str] = set()
    blocked_by: set[str] = set()
    for row in await conn.fetch(SELECT_RELATIONS, user_id):
        if row["blocker_id"] == user_id:
            blocks.add(row["blocked_id"])
        else:
            blocked_by.add(row["blocker_id"])
    return blocks, blocked_by


SELECT_EITHER = """
select exists (
    select 1 from user_blocks
    where ended_at is null
      and ((blocker_id = $1 and blocked_id = $2) or (blocker_id = $2 and blocked_id = $1))
)
"""


async def either_blocks(conn: Connection, a: str, b: str) -> bool:
    """Whether `a` blocks `b` or `b` blocks `a`, now."""
    return bool(await conn.fetchval(SELECT_EITHER, a, b))


SELECT_BLOCKERS_AMONG = """
select distinct blocker_id from user_blocks
where ended_at is null and blocker_id = any($1::text[]) and blocked_id = any($2::text[])
"""


async def blockers_among(
    conn: Connection, user_ids: Iterable[str], blocked_ids: Iterable[str]
) -> set[str]:
    """Those of `user_ids` who block any of `blocked_ids` now."""
    rows = await conn.fetch(SELECT_BLOCKERS_AMONG, list(user_ids), list(blocked_ids))
    return {row["blocker_id"] for row in rows}
