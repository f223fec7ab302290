"""A creator's paid message to every active subscriber: one row, then one copy per subscriber.

The row (with the content) commits first, so the live emit does not wait for the copies.
"Settling" writes the copies set-based, whatever the audience size — the missing 1:1
conversations with their members, then one message per conversation with its seq bumped —
under a row lock on the broadcast, once: `settled_at` says it is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class BroadcastContent:
    """What every copy of a broadcast carries."""

    body: str | None
    media: list[dict[str, Any]]
    price_cents: int
    currency: str
    preview_text: str | None


@dataclass(frozen=True)
class Broadcast:
    """A broadcast row: who sent it, when, and whether its copies are written."""

    id: int
    creator_id: str
    client_id: str
    created_at: datetime
    recipients: int
    settled: bool


_COLUMNS = "id, creator_id, client_id, created_at, recipients, settled_at is not null as settled"

INSERT_BROADCAST = f"""
insert into broadcasts (creator_id, client_id, body, media, price_cents, currency, preview_text,
    excluded_fan_ids)
values ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8::text[])
on conflict (creator_id, client_id) do nothing
returning {_COLUMNS}
"""
SELECT_BROADCAST = f"select {_COLUMNS} from broadcasts where creator_id = $1 and client_id = $2"


async def claim(
    conn: Connection,
    creator_id: str,
    client_id: str,
    content: BroadcastContent,
    excluded_fan_ids: list[str] | None = None,
) -> tuple[Broadcast, bool]:
    """The broadcast for (creator, client_id), and whether this call created it; its copies
    skip `excluded_fan_ids`."""
    row = await conn.fetchrow(
        INSERT_BROADCAST,
        creator_id,
        client_id,
        content.body,
        json.dumps(content.media),
        content.price_cents,
        content.currency,
        content.preview_text,
        excluded_fan_ids or [],
    )
    if row is not None:
        return Broadcast(**dict(row.items())), True
    row = await conn.fetchrow(SELECT_BROADCAST, creator_id, client_id)
    return Broadcast(**dict(row.items())), False


async def get(conn: Connection, creator_id: str, client_id: str) -> Broadcast | None:
    """A broadcast by its sender's idempotency key."""
    row = await conn.fetchrow(SELECT_BROADCAST, creator_id, client_id)
    return Broadcast(**dict(row.items())) if row else None


# Readers settle what their next read could show: broadcasts from creators they subscribe to,
# and their own (a creator's conversations list shows the copies as last messages).
UNSETTLED_FOR_VIEWER = """
select b.id from broadcasts b
where b.settled_at is null
    and (b.creator_id = $1 or exists (
        select 1 from subscriptions s
        where s.fan_id = $1 and s.creator_id = b.creator_id
            and s.status in ('active', 'trialing')))
order by b.id
"""
# A broadcast unsettled this long lost its sender (a crash or a failed write).
UNSETTLED_SINCE = """
select id from broadcasts
where settled_at is null and created_at < now() - make_interval(secs => $1)
order by id limit $2
"""


async def unsettled_for_viewer(conn: Connection, viewer_id: str) -> list[int]:
    """Unsettled broadcasts whose copies could be in the viewer's conversations."""
    return [int(r["id"]) for r in await conn.fetch(UNSETTLED_FOR_VIEWER, viewer_id)]


async def unsettled_since(conn: Connection, seconds: float, limit: int) -> list[int]:
    """Broadcasts left unsettled for more than `seconds`, oldest first."""
    return [int(r["id"]) for r in await conn.fetch(UNSETTLED_SINCE, seconds, limit)]


# Waits for whoever is settling it; after that wait the row is re-read and no longer matches.
LOCK_UNSETTLED = """
select creator_id, client_id, created_at, body, media::text as media, price_cents, currency,
    preview_text, excluded_fan_ids
from broadcasts where id = $1 and settled_at is null
for update
"""

# A fan and a creator with a block between them (either way) are not in its audience.
# The 1:1 key is "<smaller id> <larger id>", compared bytewise (collate "C") so it matches the
# chat feature's ordering of Python strings. `$X` is the broadcast's excluded fans.
_AUDIENCE_TEMPLATE = """
fans as (
    select s.fan_id,
        case when s.fan_id collate "C" < $1::text collate "C"
             then s.fan_id || ' ' || $1 else $1 || ' ' || s.fan_id end as direct_key
    from subscriptions s join users u on u.id = s.fan_id and u.deleted_at is null
    where s.creator_id = $1 and s.status in ('active', 'trialing') and s.fan_id <> $1
        and s.fan_id <> all($X::text[])
        and not exists (
            select 1 from user_blocks ub
            where ub.ended_at is null
              and ((ub.blocker_id = s.fan_id and ub.blocked_id = $1)
                   or (ub.blocker_id = $1 and ub.blocked_id = s.fan_id)))
)"""

CREATE_CONVERSATIONS = f"""
with {_AUDIENCE_TEMPLATE.replace("$X", "$2")},
created as (
    insert into conversations (kind, direct_key, created_by)
    select 'direct', f.direct_key, $1 from fans f
    where not exists (select 1 from conversations c where c.direct_key = f.direct_key)
    on conflict (direct_key) do nothing
    returning id, direct_key
)
insert into conversation_members (conversation_id, user_id)
select c.id, member.user_id
from created c join fans f using (direct_key)
cross join lateral (values (f.fan_id), ($1::text)) as member (user_id)
on conflict do nothing
"""

INSERT_COPIES = f"""
with {_AUDIENCE_TEMPLATE.replace("$X", "$10")},
targets as (
    select c.id from conversations c join fans f using (direct_key)
    order by c.id for update of c
),
bumped as (
    update conversations c set last_seq = c.last_seq + 1, last_message_at = now()
    from targets t where c.id = t.id
    returning c.id, c.last_seq
),
inserted as (
    insert into messages (conversation_id, seq, sender_id, client_id, body, media,
        price_cents, currency, preview_text, broadcast_id, created_at)
    select b.id, b.last_seq, $1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9 from bumped b
    returning 1
)
select count(*) from inserted
"""

MARK_SETTLED = "update broadcasts set recipients = $2, settled_at = now() where id = $1"


async def settle(conn: Connection, broadcast_id: int) -> bool:
    """Write the copies of an unsettled broadcast, in the caller's transaction.

    False when there was nothing to do: already settled (perhaps by whoever this waited for).
    """
    row = await conn.fetchrow(LOCK_UNSETTLED, broadcast_id)
    if row is None:
        return False
    creator_id = row["creator_id"]
    excluded = list(row["excluded_fan_ids"])
    await conn.execute(CREATE_CONVERSATIONS, creator_id, excluded)
    recipients = await conn.fetchval(
        INSERT_COPIES,
        creator_id,
        row["client_id"],
        row["body"],
        row["media"],
        row["price_cents"],
        row["currency"],
        row["preview_text"],
        broadcast_id,
        row["created_at"],
        excluded,
    )
    await conn.execute(MARK_SETTLED, broadcast_id, int(recipients))
    return True


# Subscribers who unlocked any message of this creator holding one of these media ids.
SELECT_OWNERS = """
select distinct u.user_id
from message_unlocks u
join messages m on m.id = u.message_id
where m.sender_id = $1
    and m.media @> any(array(
        select jsonb_build_array(jsonb_build_object('media_id', id)) from unnest($2::text[]) id
    ))
"""


async def owners_of(conn: Connection, creator_id: str, media_ids: list[str]) -> list[str]:
    """Fans who already bought any of `media_ids` from this creator."""
    if not media_ids:
        return []
    return sorted(r["user_id"] for r in await conn.fetch(SELECT_OWNERS, creator_id, media_ids))


SELECT_AUDIENCE = """
select s.fan_id from subscriptions s join users u on u.id = s.fan_id and u.deleted_at is null
where s.creator_id = $1 and s.status in ('active', 'trialing') and s.fan_id <> $1
    and s.fan_id <> all($2::text[])
    and not exists (
        select 1 from user_blocks ub
        where ub.ended_at is null
          and ((ub.blocker_id = s.fan_id and ub.blocked_id = $1)
               or (ub.blocker_id = $1 and ub.blocked_id = s.fan_id)))
"""


async def audience(conn: Connection, creator_id: str, excluded: list[str]) -> list[str]:
    """The active subscribers a broadcast reaches."""
    return [r["fan_id"] for r in await conn.fetch(SELECT_AUDIENCE, creator_id, excluded)]
