"""What presence reads and writes in Postgres: who may watch whom, and when users were last seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class WatchFacts:
    """What decides whether the viewer may watch one user (see `rooms.presence_rules`)."""

    user_id: str
    exists: bool
    role: str | None
    last_seen: datetime | None
    shares_conversation: bool
    viewer_subscribes: bool
    subscribes_to_viewer: bool


# One set-based query for the whole batch: each relation is a semi-join against the ids
# asked for, so the cost follows the batch, not the viewer's number of conversations or fans.
SELECT_WATCH_FACTS = """
with wanted as (
    select distinct id from unnest($2::text[]) as t(id)
),
shared as (
    select distinct theirs.user_id
    from conversation_members mine
    join conversation_members theirs on theirs.conversation_id = mine.conversation_id
    where mine.user_id = $1 and theirs.user_id = any($2::text[])
),
following as (
    select creator_id as user_id from subscriptions
    where fan_id = $1 and creator_id = any($2::text[]) and status in ('active', 'trialing')
),
followers as (
    select fan_id as user_id from subscriptions
    where creator_id = $1 and fan_id = any($2::text[]) and status in ('active', 'trialing')
)
select
    w.id as user_id,
    u.id is not null as exists,
    u.role,
    u.last_seen_at as last_seen,
    w.id in (select user_id from shared) as shares_conversation,
    w.id in (select user_id from following) as viewer_subscribes,
    w.id in (select user_id from followers) as subscribes_to_viewer
from wanted w
left join users u on u.id = w.id and u.deleted_at is null
"""


async def watch_facts(
    conn: Connection, viewer_id: str, user_ids: Sequence[str]
) -> dict[str, WatchFacts]:
    """The facts for each asked id (unknown and deleted users have `exists=False`)."""
    rows = await conn.fetch(SELECT_WATCH_FACTS, viewer_id, list(user_ids))
    return {row["user_id"]: WatchFacts(**dict(row)) for row in rows}


# Only ever moves forward: a late writer (another node, a retry) cannot turn the clock back.
UPDATE_LAST_SEEN = """
update users u set last_seen_at = v.seen
from unnest($1::text[], $2::timestamptz[]) as v(id, seen)
where u.id = v.id and (u.last_seen_at is null or u.last_seen_at < v.seen)
"""


async def record_last_seen(conn: Connection, seen: Sequence[tuple[str, datetime]]) -> None:
    """Store when each user was last seen, as one statement."""
    if seen:
        await conn.execute(UPDATE_LAST_SEEN, [s[0] for s in seen], [s[1] for s in seen])
