"""A creator's vault: their ready media and where each went (sent, offered, bought).

Uses are found through the messages' `media` JSON (GIN-indexed containment); a delivery is
one (message, recipient) pair. Revenue is what `ppv_message` purchases of those messages kept
(the price less what was refunded or is disputed), split evenly over the message's items, the
cents left over going to its lowest media id, so the items of a message add up to its sales.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection
from backchannel.persistence.media import _COLUMNS, MediaRow, _row

SELECT_VAULT_PAGE = f"""
select {_COLUMNS} from media
where owner_id = $1 and status = 'ready' and ($2::bigint is null or id < $2)
    and ($3::text is null or kind = $3)
order by id desc limit $4
"""


async def page(
    conn: Connection, owner_id: str, before_id: int | None, kind: str | None, limit: int
) -> list[MediaRow]:
    """The owner's ready media, newest first."""
    return [_row(r) for r in await conn.fetch(SELECT_VAULT_PAGE, owner_id, before_id, kind, limit)]


@dataclass(frozen=True)
class MediaStats:
    """How one item did."""

    sent_count: int
    unlocked_count: int
    revenue_cents: int
    last_sent_at: datetime | None


_DELIVERIES = """
deliveries as (
    select p.media_id, m.id as message_id, cm.user_id as fan_id, m.created_at,
        items.count as item_count, items.lowest as lowest_media_id
    from unnest($2::bigint[]) as p (media_id)
    join messages m
        on m.media @> jsonb_build_array(jsonb_build_object('media_id', p.media_id::text))
    join conversation_members cm on cm.conversation_id = m.conversation_id and cm.user_id <> $1
    cross join lateral (
        select count(*) as count, min((item ->> 'media_id')::bigint) as lowest
        from jsonb_array_elements(m.media) as item where item ? 'media_id'
    ) as items
    where m.sender_id = $1
)"""

SELECT_STATS = f"""
with {_DELIVERIES}
select d.media_id, count(*) as sent_count,
    count(*) filter (where exists (
        select 1 from message_unlocks u where u.message_id = d.message_id and u.user_id = d.fan_id
    )) as unlocked_count,
    coalesce(sum((
        select sum(kept.cents / d.item_count
            + case when d.media_id = d.lowest_media_id then kept.cents % d.item_count else 0 end)
        from purchases pu
        cross join lateral (
            select pu.amount_cents - pu.refunded_cents - pu.disputed_cents as cents
        ) as kept
        where pu.kind = 'ppv_message' and pu.target_id = d.message_id::text
            and pu.buyer_id = d.fan_id and pu.status in ('completed', 'refunded', 'disputed')
    )), 0)::bigint as revenue_cents,
    max(d.created_at) as last_sent_at
from deliveries d group by d.media_id
"""


async def stats(conn: Connection, owner_id: str, media_ids: list[int]) -> dict[int, MediaStats]:
    """Per item: deliveries, unlocks, revenue and the last send."""
    rows = await conn.fetch(SELECT_STATS, owner_id, media_ids)
    return {
        r["media_id"]: MediaStats(
            r["sent_count"], r["unlocked_count"], int(r["revenue_cents"]), r["last_sent_at"]
        )
        for r in rows
    }


@dataclass(frozen=True)
class FanUse:
    """One fan's history with one item (or, per fan, one item of a creator's)."""

    fan_id: str
    media_id: int
    message_ids: list[str]
    first_sent_at: datetime
    unlocked_at: datetime | None
    offered: bool


SELECT_FANS_OF_MEDIA = """
select cm.user_id as fan_id, $2::bigint as media_id,
    array_agg(m.id::text order by m.id) as message_ids,
    min(m.created_at) as first_sent_at, min(u.unlocked_at) as unlocked_at,
    bool_or(m.price_cents is not null) as offered
from messages m
join conversation_members cm on cm.conversation_id = m.conversation_id and cm.user_id <> $1
left join message_unlocks u on u.message_id = m.id and u.user_id = cm.user_id
where m.sender_id = $1 and m.media @> $3::jsonb and ($4::text is null or cm.user_id > $4)
group by cm.user_id order by cm.user_id limit $5
"""


async def fans_of(
    conn: Connection, owner_id: str, media_id: int, after_fan: str | None, limit: int
) -> list[FanUse]:
    """Every fan the item was sent to, by fan id."""
    filter_ = json.dumps([{"media_id": str(media_id)}])
    rows = await conn.fetch(SELECT_FANS_OF_MEDIA, owner_id, media_id, filter_, after_fan, limit)
    return [FanUse(**dict(r.items())) for r in rows]


# What a fan got of a creator's: media in messages to them (sent, offered, bought) and in
# pay-per-view content they bought (no message; bought when unlocked).
SELECT_MEDIA_OF_FAN = """
with uses as (
    select (item ->> 'media_id')::bigint as media_id, m.id::text as message_id,
        m.created_at as at, u.unlocked_at, m.price_cents is not null as offered
    from messages m
    join conversation_members cm on cm.conversation_id = m.conversation_id and cm.user_id = $2
    cross join lateral jsonb_array_elements(m.media) as item
    left join message_unlocks u on u.message_id = m.id and u.user_id = $2
    where m.sender_id = $1 and item ? 'media_id'
    union all
    select (item ->> 'media_id')::bigint, null, cu.unlocked_at, cu.unlocked_at, true
    from content_unlocks cu
    join content c on c.id = cu.content_id
    cross join lateral jsonb_array_elements(c.media) as item
    where c.creator_id = $1 and cu.user_id = $2 and item ? 'media_id'
)
select $2::text as fan_id, media_id,
    coalesce(array_agg(distinct message_id) filter (where message_id is not null), '{}')
        as message_ids,
    min(at) as first_sent_at, min(unlocked_at) as unlocked_at, bool_or(offered) as offered
from uses
where $3::bigint is null or media_id < $3
group by media_id order by media_id desc limit $4
"""


async def media_of_fan(
    conn: Connection, owner_id: str, fan_id: str, before_media: int | None, limit: int
) -> list[FanUse]:
    """Every item of the owner's the fan was sent, newest item first."""
    rows = await conn.fetch(SELECT_MEDIA_OF_FAN, owner_id, fan_id, before_media, limit)
    return [FanUse(**dict(r.items())) for r in rows]
