"""A creator's paid message to every active subscriber, written set-based.

Three statements whatever the audience size: the broadcast row, the missing 1:1
conversations with their members, and one message per conversation with its seq bumped.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection

INSERT_BROADCAST = """
insert into broadcasts (creator_id, client_id) values ($1, $2)
on conflict (creator_id, client_id) do nothing
returning id
"""
SELECT_BROADCAST = (
    "select id, recipients, created_at from broadcasts where creator_id = $1 and client_id = $2"
)


async def claim(conn: Connection, creator_id: str, client_id: str) -> tuple[int, bool]:
    """The broadcast id for (creator, client_id), and whether this call created it."""
    new_id = await conn.fetchval(INSERT_BROADCAST, creator_id, client_id)
    if new_id is not None:
        return int(new_id), True
    row = await conn.fetchrow(SELECT_BROADCAST, creator_id, client_id)
    return int(row["id"]), False


async def recipients(conn: Connection, creator_id: str, client_id: str) -> int:
    """How many subscribers an earlier broadcast reached."""
    row = await conn.fetchrow(SELECT_BROADCAST, creator_id, client_id)
    return int(row["recipients"]) if row else 0


# The 1:1 key is "<smaller id> <larger id>", compared bytewise (collate "C") so it matches the
# chat feature's ordering of Python strings.
_AUDIENCE = """
fans as (
    select s.fan_id,
        case when s.fan_id collate "C" < $1::text collate "C"
             then s.fan_id || ' ' || $1 else $1 || ' ' || s.fan_id end as direct_key
    from subscriptions s join users u on u.id = s.fan_id and u.deleted_at is null
    where s.creator_id = $1 and s.status in ('active', 'trialing') and s.fan_id <> $1
)"""

CREATE_CONVERSATIONS = f"""
with {_AUDIENCE},
created as (
    insert into conversations (kind, direct_key, created_by)
    select 'direct', direct_key, $1 from fans
    on conflict (direct_key) do nothing
    returning id, direct_key
)
insert into conversation_members (conversation_id, user_id)
select c.id, member.user_id
from created c join fans f using (direct_key)
cross join lateral (values (f.fan_id), ($1::text)) as member (user_id)
on conflict do nothing
"""

INSERT_MESSAGES = f"""
with {_AUDIENCE},
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
        price_cents, currency, preview_text, broadcast_id)
    select b.id, b.last_seq, $1, $2, $3, $4::text::jsonb, $5, $6, $7, $8 from bumped b
    returning created_at
)
select count(*) as recipients, max(created_at) as created_at from inserted
"""

SET_RECIPIENTS = "update broadcasts set recipients = $2 where id = $1"


async def fan_out(
    conn: Connection,
    *,
    broadcast_id: int,
    creator_id: str,
    client_id: str,
    body: str | None,
    media: list[dict[str, Any]],
    price_cents: int,
    currency: str,
    preview_text: str | None,
) -> tuple[int, datetime | None]:
    """One paid message in each active subscriber's conversation with the creator."""
    await conn.execute(CREATE_CONVERSATIONS, creator_id)
    row = await conn.fetchrow(
        INSERT_MESSAGES,
        creator_id,
        client_id,
        body,
        json.dumps(media),
        price_cents,
        currency,
        preview_text,
        broadcast_id,
    )
    count = int(row["recipients"])
    await conn.execute(SET_RECIPIENTS, broadcast_id, count)
    return count, row["created_at"]
