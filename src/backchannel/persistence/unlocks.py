"""Paid messages as a buyer sees them, and who has unlocked which message or content."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection


class PaidMessage(BaseModel):
    """A message row plus what one viewer may do with it."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    client_id: str
    created_at: datetime
    body: str | None
    media: list[dict[str, Any]]
    price_cents: int | None
    currency: str
    preview_text: str | None
    is_member: bool
    unlocked: bool
    deleted: bool = False

    @field_validator("id", "conversation_id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> str:
        return str(value)

    @field_validator("media", mode="before")
    @classmethod
    def _media(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value


SELECT_FOR_VIEWER = """
select m.id, m.conversation_id, m.seq, m.sender_id, m.client_id, m.created_at, m.body,
    m.media::text as media, m.price_cents, m.currency, m.preview_text,
    exists (select 1 from conversation_members cm
            where cm.conversation_id = m.conversation_id and cm.user_id = $2) as is_member,
    exists (select 1 from message_unlocks u where u.message_id = m.id and u.user_id = $2)
        as unlocked,
    m.deleted_at is not null as deleted
from messages m where m.id = $1
"""


async def message_for_viewer(
    conn: Connection, message_id: int, viewer_id: str
) -> PaidMessage | None:
    """A message with the viewer's membership and unlock state."""
    row = await conn.fetchrow(SELECT_FOR_VIEWER, message_id, viewer_id)
    return PaidMessage.model_validate(dict(row)) if row else None


INSERT_MESSAGE_UNLOCK = """
insert into message_unlocks (message_id, user_id) values ($1, $2)
on conflict do nothing returning message_id
"""


async def unlock_message(conn: Connection, message_id: int, user_id: str) -> bool:
    """Let a user see a paid message whole; False if they already could."""
    return await conn.fetchval(INSERT_MESSAGE_UNLOCK, message_id, user_id) is not None


DELETE_MESSAGE_UNLOCK = (
    "delete from message_unlocks where message_id = $1 and user_id = $2 returning message_id"
)


async def relock_message(conn: Connection, message_id: int, user_id: str) -> bool:
    """Take an unlock back (refund, dispute); False if there was none."""
    return await conn.fetchval(DELETE_MESSAGE_UNLOCK, message_id, user_id) is not None


INSERT_CONTENT_UNLOCK = """
insert into content_unlocks (content_id, user_id) values ($1, $2)
on conflict do nothing returning content_id
"""


async def unlock_content(conn: Connection, content_id: int, user_id: str) -> bool:
    """Let a user see PPV content whole; False if they already could."""
    return await conn.fetchval(INSERT_CONTENT_UNLOCK, content_id, user_id) is not None


DELETE_CONTENT_UNLOCK = (
    "delete from content_unlocks where content_id = $1 and user_id = $2 returning content_id"
)


async def relock_content(conn: Connection, content_id: int, user_id: str) -> bool:
    """Take a content unlock back; False if there was none."""
    return await conn.fetchval(DELETE_CONTENT_UNLOCK, content_id, user_id) is not None


SELECT_CONTENT_UNLOCKED = (
    "select exists (select 1 from content_unlocks where content_id = $1 and user_id = $2)"
)


async def content_unlocked(conn: Connection, content_id: int, user_id: str) -> bool:
    """Whether a user has bought this content."""
    return bool(await conn.fetchval(SELECT_CONTENT_UNLOCKED, content_id, user_id))
