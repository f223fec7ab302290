"""Messages: insert with an assigned seq, idempotency look-ups, and per-viewer reads.

Every read that returns messages also says, for one viewer, whether a `message_unlocks` row
exists for them (`unlocked`), so an unlock changes what that viewer sees on the next read.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class StoredMessage:
    """A message row as stored, plus whether one viewer has unlocked it."""

    id: int
    conversation_id: int
    seq: int
    sender_id: str
    client_id: str
    body: str | None
    media: list[dict[str, Any]]
    price_cents: int | None
    currency: str
    preview_text: str | None
    broadcast_id: int | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None  # 'sender' or 'moderator'
    unlocked: bool = False


_COLUMNS = (
    "m.id, m.conversation_id, m.seq, m.sender_id, m.client_id, m.body, m.media, m.price_cents, "
    "m.currency, m.preview_text, m.broadcast_id, m.created_at, m.edited_at, m.deleted_at, "
    "m.deleted_by"
)
# $1 is always the viewer in the queries that use this.
_UNLOCKED = (
    "exists (select 1 from message_unlocks u where u.message_id = m.id and u.user_id = $1)"
    " as unlocked"
)


def _message(row: Any) -> StoredMessage:
    data = dict(row.items())
    media = data["media"]
    data["media"] = json.loads(media) if isinstance(media, str) else list(media)
    data.setdefault("unlocked", False)
    return StoredMessage(**data)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A `message:send` to store: what the sender wrote, before it has a seq."""

    conversation_id: int
    sender_id: str
    client_id: str
    body: str | None
    media: list[dict[str, Any]]
    price_cents: int | None
    currency: str
    preview_text: str | None


# A stored message and the conversation's participants (for delivery).
Appended = tuple[StoredMessage, list[str]]

# Who a new message goes to: the members, less those who block its sender (they receive
# nothing of them, live or later: `NOT_HIDDEN` hides it from their reads).
_PARTICIPANTS = """array(select pm.user_id from conversation_members pm
          where pm.conversation_id = m.conversation_id
            and not exists (
                select 1 from user_blocks ub
                where ub.blocker_id = pm.user_id and ub.blocked_id = m.sender_id
                  and ub.ended_at is null
            )
          order by pm.joined_at, pm.user_id) as participant_ids"""

# A direct conversation in which either member blocks the other takes no message from
# either ({c}: the conversation, {s}: the sender). Checked in the statement that appends, so a
# block committed on any node holds for the very next send.
_DIRECT_BLOCKED = """exists (
          select 1 from conversations dc
          join conversation_members om on om.conversation_id = dc.id and om.user_id <> {s}
          join user_blocks ub on ub.ended_at is null
              and ((ub.blocker_id = om.user_id and ub.blocked_id = {s})
                   or (ub.blocker_id = {s} and ub.blocked_id = om.user_id))
          where dc.id = {c} and dc.kind = 'direct'
      )"""

# What a viewer ($1) never sees: messages whose sender they blocked at the time they were sent.
NOT_HIDDEN = """not exists (
    select 1 from user_blocks hb
    where hb.blocker_id = $1 and hb.blocked_id = m.sender_id
      and m.created_at >= hb.started_at
      and (hb.ended_at is null or m.created_at < hb.ended_at)
)"""

# One statement, so one round trip and its own transaction. The update row-locks the
# conversation until the insert commits (seqs stay gapless and ordered) and bumps nothing when
# the sender is not a member or already used `client_id` (a retry); a concurrent duplicate that
# slips past that check fails the insert on the unique index, which rolls the bump back. The
# participants come back with the row, for delivery.
APPEND_MESSAGE = f"""
with bumped as (
    update conversations set last_seq = last_seq + 1, last_message_at = now()
    where id = $1
      and exists (
          select 1 from conversation_members
          where conversation_id = $1 and user_id = $2
      )
      and not exists (
          select 1 from messages
          where sender_id = $2 and client_id = $3 and broadcast_id is null
      )
      and not {_DIRECT_BLOCKED.format(c="$1", s="$2")}
    returning id, last_seq
), m as (
    insert into messages
        (conversation_id, seq, sender_id, client_id, body, media, price_cents, currency,
         preview_text, broadcast_id)
    select bumped.id, bumped.last_seq, $2, $3, $4, $5::jsonb, $6, $7, $8, null from bumped
    returning *
)
select {_COLUMNS}, {_PARTICIPANTS}
from m
"""


def _append_args(new: NewMessage) -> tuple[Any, ...]:
    """The parameters $1..$8 of the append statements, in their order."""
    return (
        new.conversation_id,
        new.sender_id,
        new.client_id,
        new.body,
        json.dumps(new.media),
        new.price_cents,
        new.currency,
        new.preview_text,
    )


async def append_message(conn: Connection, new: NewMessage) -> Appended | None:
    """Check membership, assign the next seq and store the message, in one statement.

    Returns the message and the conversation's participants; None when the conversation does
    not exist, the sender is not in it, or the sender already used `client_id` (the caller
    tells which). A concurrent duplicate raises `Conflict` at the unit-of-work boundary.
    """
    row = await conn.fetchrow(APPEND_MESSAGE, *_append_args(new))
    if row is None:
        return None
    data = dict(row.items())
    participants = list(data.pop("participant_ids"))
    return _message(data), participants


class _Busy(enum.Enum):
    BUSY = "busy"


# A message the `try_append` statements did not write because its conversation was locked
# (another send's statement, or a paid broadcast's transaction, holds it).
BUSY = _Busy.BUSY
TryAppended = Appended | None | Literal[_Busy.BUSY]

# `APPEND_MESSAGE` that never waits for a row lock: when the conversation is locked it writes
# nothing and says `busy` (the caller writes the message again with `APPEND_MESSAGE`). Always
# one row back: the message's columns, or nulls.
TRY_APPEND_MESSAGE = f"""
with target as (
    select id from conversations where id = $1 for no key update skip locked
), bumped as (
    update conversations c set last_seq = c.last_seq + 1, last_message_at = now()
    from target t
    where c.id = t.id
      and exists (
          select 1 from conversation_members
          where conversation_id = $1 and user_id = $2
      )
      and not exists (
          select 1 from messages
          where sender_id = $2 and client_id = $3 and broadcast_id is null
      )
      and not {_DIRECT_BLOCKED.format(c="$1", s="$2")}
    returning c.id, c.last_seq
), m as (
    insert into messages
        (conversation_id, seq, sender_id, client_id, body, media, price_cents, currency,
         preview_text, broadcast_id)
    select bumped.id, bumped.last_seq, $2, $3, $4, $5::jsonb, $6, $7, $8, null from bumped
    returning *
)
select {_COLUMNS}, {_PARTICIPANTS},
    not exists (select 1 from target)
        and exists (select 1 from conversations where id = $1) as busy
from (values (1)) as one (x) left join m on true
"""


async def try_append_message(conn: Connection, new: NewMessage) -> TryAppended:
    """`append_message`, or `BUSY` (nothing written) if the conversation is locked."""
    row = await conn.fetchrow(TRY_APPEND_MESSAGE, *_append_args(new))
    return _try_appended(row)


def _try_appended(row: Any) -> TryAppended:
    data = dict(row.items())
    if data.pop("busy"):
        return BUSY
    if data["id"] is None:
        return None
    participants = list(data.pop("participant_ids"))
    return _message(data), participants


# `TRY_APPEND_MESSAGE` for many messages, in one statement and one commit (group commit:
# Postgres spends far more on a statement and its commit than on a row). Rows that are not
# appended (not a member, client_id already used) are filtered out before anything is locked.
# Each conversation's last_seq goes up by its number of new messages, which take the seqs in
# input order. Locked conversations are skipped (their messages come back `busy`), so a batch
# never waits behind another send or a paid broadcast. One row back per accepted input row.
TRY_APPEND_MESSAGES = f"""
with input as (
    select *
    from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                $7::text[], $8::text[])
        with ordinality as t (conversation_id, sender_id, client_id, body, media, price_cents,
                              currency, preview_text, ord)
), accepted as (
    select i.*,
        row_number() over (partition by i.conversation_id order by i.ord) as k,
        count(*) over (partition by i.conversation_id) as n
    from input i
    where exists (
            select 1 from conversation_members cm
            where cm.conversation_id = i.conversation_id and cm.user_id = i.sender_id
        )
      and not exists (
            select 1 from messages m
            where m.sender_id = i.sender_id and m.client_id = i.client_id
              and m.broadcast_id is null
        )
      and not {_DIRECT_BLOCKED.format(c="i.conversation_id", s="i.sender_id")}
), targets as (
    select c.id from conversations c
    where c.id in (select conversation_id from accepted)
    order by c.id for no key update of c skip locked
), bumped as (
    update conversations c set last_seq = c.last_seq + x.n, last_message_at = now()
    from (select conversation_id, max(n) as n from accepted group by conversation_id) x,
        targets t
    where c.id = x.conversation_id and t.id = c.id
    returning c.id, c.last_seq
), m as (
    insert into messages
        (conversation_id, seq, sender_id, client_id, body, media, price_cents, currency,
         preview_text, broadcast_id)
    select a.conversation_id, b.last_seq - a.n + a.k, a.sender_id, a.client_id, a.body,
        a.media::jsonb, a.price_cents, a.currency, a.preview_text, null
    from accepted a join bumped b on b.id = a.conversation_id
    order by a.ord
    returning *
)
select {_COLUMNS}, {_PARTICIPANTS}, a.sender_id as input_sender_id,
    a.client_id as input_client_id, t.id is null as busy
from accepted a
left join targets t on t.id = a.conversation_id
left join m on m.sender_id = a.sender_id and m.client_id = a.client_id
"""


async def try_append_messages(conn: Connection, batch: Sequence[NewMessage]) -> list[TryAppended]:
    """`try_append_message` for each of `batch`, in one statement; results in input order.

    A (sender, client_id) must appear at most once in `batch`. Any failure (a concurrent
    duplicate's `Conflict`, a value Postgres refuses) fails the whole batch.
    """
    rows = await conn.fetch(
        TRY_APPEND_MESSAGES,
        [new.conversation_id for new in batch],
        [new.sender_id for new in batch],
        [new.client_id for new in batch],
        [new.body for new in batch],
        [json.dumps(new.media) for new in batch],
        [new.price_cents for new in batch],
        [new.currency for new in batch],
        [new.preview_text for new in batch],
    )
    outcomes: dict[tuple[str, str], TryAppended] = {}
    for row in rows:
        key = (row["input_sender_id"], row["input_client_id"])
        data = dict(row.items())
        del data["input_sender_id"], data["input_client_id"]
        outcomes[key] = _try_appended(data)
    return [outcomes.get((new.sender_id, new.client_id)) for new in batch]


async def prepare_sends(conn: Connection) -> None:
    """Prepare the send statements on a new pooled connection; they write nothing here.

    A statement's first use on a connection costs a parse round trip and a cold plan: paid
    at connect, not by the first messages sent through a new connection.
    """
    nothing = NewMessage(0, "", "", None, [], None, "usd", None)
    try:
        await try_append_message(conn, nothing)
        await try_append_messages(conn, [])
        await append_message(conn, nothing)
    except asyncpg.UndefinedTableError:
        pass  # not migrated yet (`backchannel migrate` runs later): prepared on first use


# The predicate matches messages_sender_client_idx's, so the partial unique index is used.
SELECT_BY_CLIENT_ID = f"""
select {_COLUMNS} from messages m
where m.sender_id = $1 and m.client_id = $2 and m.broadcast_id is null
"""


async def find_by_client_id(
    conn: Connection, sender_id: str, client_id: str
) -> StoredMessage | None:
    """The message this sender already stored under `client_id`, if any (seen by its sender)."""
    row = await conn.fetchrow(SELECT_BY_CLIENT_ID, sender_id, client_id)
    return _message(row) if row else None


SELECT_FOR_VIEWER = f"""
select {_COLUMNS}, {_UNLOCKED} from messages m where m.id = $2
"""


async def get_for_viewer(conn: Connection, message_id: int, viewer_id: str) -> StoredMessage | None:
    """One message, with whether `viewer_id` has unlocked it."""
    row = await conn.fetchrow(SELECT_FOR_VIEWER, viewer_id, message_id)
    return _message(row) if row else None


SELECT_AFTER_SEQ = f"""
select {_COLUMNS}, {_UNLOCKED} from messages m
where m.conversation_id = $2 and m.seq > $3 and {NOT_HIDDEN}
order by m.seq
limit $4
"""


async def after_seq(
    conn: Connection, conversation_id: int, viewer_id: str, after: int, limit: int
) -> list[StoredMessage]:
    """Messages after `after`, oldest first (sync)."""
    rows = await conn.fetch(SELECT_AFTER_SEQ, viewer_id, conversation_id, after, limit)
    return [_message(row) for row in rows]


SELECT_BEFORE_SEQ = f"""
select {_COLUMNS}, {_UNLOCKED} from messages m
where m.conversation_id = $2 and m.seq < $3 and {NOT_HIDDEN}
order by m.seq desc
limit $4
"""


async def before_seq(
    conn: Connection, conversation_id: int, viewer_id: str, before: int, limit: int
) -> list[StoredMessage]:
    """Messages before `before`, newest first (history)."""
    rows = await conn.fetch(SELECT_BEFORE_SEQ, viewer_id, conversation_id, before, limit)
    return [_message(row) for row in rows]


SELECT_AT_SEQS = f"""
select {_COLUMNS}, {_UNLOCKED}
from unnest($2::bigint[], $3::bigint[]) as t (conversation_id, seq)
join messages m on m.conversation_id = t.conversation_id and m.seq = t.seq
where {NOT_HIDDEN}
"""


async def at_seqs(
    conn: Connection, viewer_id: str, positions: list[tuple[int, int]]
) -> dict[int, StoredMessage]:
    """The message at each (conversation, seq), keyed by conversation (last messages)."""
    if not positions:
        return {}
    rows = await conn.fetch(
        SELECT_AT_SEQS, viewer_id, [p[0] for p in positions], [p[1] for p in positions]
    )
    found = [_message(row) for row in rows]
    return {m.conversation_id: m for m in found}


COUNT_UNREAD = f"""
select count(*) from messages m
where m.conversation_id = $1 and m.seq > $2 and m.sender_id <> $3 and m.deleted_at is null
  and {NOT_HIDDEN.replace("$1", "$3")}
"""


async def count_unread(conn: Connection, conversation_id: int, after: int, reader_id: str) -> int:
    """Messages after the reader's pointer that someone else sent."""
    count: int = await conn.fetchval(COUNT_UNREAD, conversation_id, after, reader_id)
    return count


# -- edits and tombstones --------------------------------------------------------------------

LOCK_MESSAGE = f"""
select {_COLUMNS},
    (select count(*) from message_unlocks u where u.message_id = m.id) as unlocks
from messages m where m.id = $1
for update
"""


async def lock_message(conn: Connection, message_id: int) -> tuple[StoredMessage, int] | None:
    """The message, row-locked for an edit or delete, and how many viewers unlocked it."""
    row = await conn.fetchrow(LOCK_MESSAGE, message_id)
    if row is None:
        return None
    data = dict(row.items())
    unlock_count = int(data.pop("unlocks"))
    return _message(data), unlock_count


SET_BODY = f"""
update messages m set body = $2, edited_at = now()
where m.id = $1
returning {_COLUMNS}
"""


async def set_body(conn: Connection, message_id: int, body: str) -> StoredMessage:
    """Replace a message's body and stamp `edited_at` (the caller checked it may)."""
    row = await conn.fetchrow(SET_BODY, message_id, body)
    assert row is not None
    return _message(row)


TOMBSTONE = f"""
update messages m set deleted_at = now(), deleted_by = $2
where m.id = $1 and (m.deleted_at is null or (m.deleted_by = 'sender' and $2 = 'moderator'))
returning {_COLUMNS}
"""


async def tombstone(conn: Connection, message_id: int, by: str) -> StoredMessage | None:
    """Mark a message deleted by its `sender` or a `moderator`; None if it already was."""
    row = await conn.fetchrow(TOMBSTONE, message_id, by)
    return _message(row) if row else None


TOMBSTONE_ALL_OF = """
update messages m set deleted_at = now(), deleted_by = 'moderator'
where m.sender_id = $1 and m.deleted_at is null
returning m.id, m.conversation_id, m.seq
"""


async def tombstone_all_of(conn: Connection, sender_id: str) -> list[tuple[int, int, int]]:
    """Every message of a sender becomes a tombstone for everyone: (id, conversation, seq)."""
    rows = await conn.fetch(TOMBSTONE_ALL_OF, sender_id)
    return [(row["id"], row["conversation_id"], row["seq"]) for row in rows]


SELECT_BUYERS = "select user_id from message_unlocks where message_id = $1"


async def buyers(conn: Connection, message_id: int) -> set[str]:
    """Who unlocked a paid message."""
    return {row["user_id"] for row in await conn.fetch(SELECT_BUYERS, message_id)}


SELECT_RECENT_OF = f"""
select {_COLUMNS} from messages m
where m.conversation_id = $1 and m.seq <= $2
order by m.seq desc
limit $3
"""


async def recent_until(
    conn: Connection, conversation_id: int, seq: int, limit: int
) -> list[StoredMessage]:
    """Up to `limit` messages ending at `seq`, newest first, as stored (for moderators)."""
    return [_message(r) for r in await conn.fetch(SELECT_RECENT_OF, conversation_id, seq, limit)]


SELECT_RECENT_BY_SENDER = f"""
select {_COLUMNS} from messages m
where m.sender_id = $1
order by m.id desc
limit $2
"""


async def recent_by_sender(conn: Connection, sender_id: str, limit: int) -> list[StoredMessage]:
    """A user's latest messages anywhere, newest first, as stored (for moderators)."""
    return [_message(r) for r in await conn.fetch(SELECT_RECENT_BY_SENDER, sender_id, limit)]
