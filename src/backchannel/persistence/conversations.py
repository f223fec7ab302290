"""Conversations, their members, the per-conversation seq counter and read pointers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class ConversationRow:
    """A conversation with its participants, in the order they joined."""

    id: int
    kind: str
    title: str | None
    created_by: str
    created_at: datetime
    last_seq: int
    last_message_at: datetime | None
    participant_ids: list[str]


@dataclass(frozen=True)
class MemberView:
    """One member's row of the conversation list: the conversation plus their read state."""

    conversation: ConversationRow
    activity_at: datetime
    last_read_seq: int
    unread_count: int
    muted_until: datetime | None = None


_PARTICIPANTS = (
    "array(select pm.user_id from conversation_members pm"
    " where pm.conversation_id = c.id order by pm.joined_at, pm.user_id) as participant_ids"
)
_COLUMNS = (
    "c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq, c.last_message_at, "
    + _PARTICIPANTS
)


def _conversation(row: Any) -> ConversationRow:
    return ConversationRow(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
        last_message_at=row["last_message_at"],
        participant_ids=list(row["participant_ids"]),
    )


INSERT_DIRECT = """
insert into conversations (kind, title, direct_key, created_by)
values ('direct', $1, $2, $3)
on conflict (direct_key) do nothing
returning id
"""
SELECT_DIRECT = "select id from conversations where direct_key = $1"


async def insert_direct(
    conn: Connection, *, title: str | None, direct_key: str, created_by: str
) -> tuple[int, bool]:
    """The pair's conversation id, and whether this call created it (safe under races)."""
    created = await conn.fetchval(INSERT_DIRECT, title, direct_key, created_by)
    if created is not None:
        return int(created), True
    existing = await conn.fetchval(SELECT_DIRECT, direct_key)
    return int(existing), False


INSERT_GROUP = """
insert into conversations (kind, title, created_by) values ('group', $1, $2) returning id
"""


async def insert_group(conn: Connection, *, title: str | None, created_by: str) -> int:
    """A new group conversation's id."""
    return int(await conn.fetchval(INSERT_GROUP, title, created_by))


INSERT_MEMBERS = """
insert into conversation_members (conversation_id, user_id)
select $1, unnest($2::text[])
on conflict do nothing
"""


async def add_members(conn: Connection, conversation_id: int, user_ids: list[str]) -> None:
    """Add members (already members are left as they are)."""
    await conn.execute(INSERT_MEMBERS, conversation_id, user_ids)


SELECT_CONVERSATION = f"select {_COLUMNS} from conversations c where c.id = $1"


async def get_conversation(conn: Connection, conversation_id: int) -> ConversationRow | None:
    """A conversation with its participants."""
    row = await conn.fetchrow(SELECT_CONVERSATION, conversation_id)
    return _conversation(row) if row else None


SELECT_READ_POINTER_FOR_UPDATE = """
select m.last_read_seq, c.last_seq
from conversation_members m join conversations c on c.id = m.conversation_id
where m.conversation_id = $1 and m.user_id = $2
for update of m
"""
UPDATE_READ_POINTER = """
update conversation_members set last_read_seq = $3
where conversation_id = $1 and user_id = $2
"""


async def advance_read(
    conn: Connection, conversation_id: int, user_id: str, seq: int
) -> tuple[int, int] | None:
    """Move the reader's pointer forward to `seq` (never back, never past the last message).

    Returns (before, after), or None when the user is not a member.
    """
    row = await conn.fetchrow(SELECT_READ_POINTER_FOR_UPDATE, conversation_id, user_id)
    if row is None:
        return None
    before = int(row["last_read_seq"])
    after = max(before, min(seq, int(row["last_seq"])))
    if after != before:
        await conn.execute(UPDATE_READ_POINTER, conversation_id, user_id, after)
    return before, after


# Keyset over (activity, id) descending; activity is the last message's time, else creation.
SELECT_MEMBER_PAGE = f"""
select {_COLUMNS},
       coalesce(c.last_message_at, c.created_at) as activity_at,
       m.last_read_seq,
       case when m.muted_until > now() then m.muted_until end as muted_until,
       (select count(*) from messages um
        where um.conversation_id = c.id and um.seq > m.last_read_seq
          and um.sender_id <> $1 and um.deleted_at is null
          and not exists (
              select 1 from user_blocks hb
              where hb.blocker_id = $1 and hb.blocked_id = um.sender_id
                and um.created_at >= hb.started_at
                and (hb.ended_at is null or um.created_at < hb.ended_at)
          )) as unread_count
from conversation_members m
join conversations c on c.id = m.conversation_id
where m.user_id = $1
  and ($2::timestamptz is null
       or (coalesce(c.last_message_at, c.created_at), c.id) < ($2::timestamptz, $3::bigint))
order by coalesce(c.last_message_at, c.created_at) desc, c.id desc
limit $4
"""


async def page_for_member(
    conn: Connection,
    user_id: str,
    *,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[MemberView]:
    """A page of the user's conversations, most recently active first."""
    rows = await conn.fetch(
        SELECT_MEMBER_PAGE,
        user_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [
        MemberView(
            conversation=_conversation(row),
            activity_at=row["activity_at"],
            last_read_seq=int(row["last_read_seq"]),
            unread_count=int(row["unread_count"]),
            muted_until=row["muted_until"],
        )
        for row in rows
    ]


SET_MUTE = """
update conversation_members set muted_until = $3
where conversation_id = $1 and user_id = $2
returning 1
"""


async def set_mute(
    conn: Connection, conversation_id: int, user_id: str, until: datetime | None
) -> bool:
    """Mute until `until`, or unmute (None); False if the user is not a member."""
    return await conn.fetchval(SET_MUTE, conversation_id, user_id, until) is not None


SELECT_MUTED = """
select user_id from conversation_members
where conversation_id = $1 and user_id = any($2::text[]) and muted_until > now()
"""


async def muted_among(conn: Connection, conversation_id: int, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` who have muted the conversation now."""
    rows = await conn.fetch(SELECT_MUTED, conversation_id, user_ids)
    return {row["user_id"] for row in rows}
