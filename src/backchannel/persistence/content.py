"""Creators' posts: public, for subscribers, or pay-per-view."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection

Visibility = Literal["public", "subscribers", "ppv"]


class ContentRow(BaseModel):
    """One post as stored."""

    id: str
    creator_id: str
    title: str | None
    body: str | None
    media: list[dict[str, Any]]
    visibility: Visibility
    price_cents: int | None
    currency: str
    preview_text: str | None
    created_at: datetime

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> str:
        return str(value)

    @field_validator("media", mode="before")
    @classmethod
    def _media(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value


_COLUMNS = """id, creator_id, title, body, media::text as media, visibility, price_cents,
currency, preview_text, created_at"""

INSERT_CONTENT = f"""
insert into content (creator_id, title, body, media, visibility, price_cents, currency,
    preview_text)
values ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8)
returning {_COLUMNS}
"""


async def insert(
    conn: Connection,
    *,
    creator_id: str,
    title: str | None,
    body: str | None,
    media: list[dict[str, Any]],
    visibility: Visibility,
    price_cents: int | None,
    currency: str,
    preview_text: str | None,
) -> ContentRow:
    """Store a post."""
    row = await conn.fetchrow(
        INSERT_CONTENT,
        creator_id,
        title,
        body,
        json.dumps(media),
        visibility,
        price_cents,
        currency,
        preview_text,
    )
    return ContentRow.model_validate(dict(row))


SELECT_CONTENT = f"select {_COLUMNS} from content where id = $1"


async def get(conn: Connection, content_id: int) -> ContentRow | None:
    """One post."""
    row = await conn.fetchrow(SELECT_CONTENT, content_id)
    return ContentRow.model_validate(dict(row)) if row else None


SELECT_BY_CREATOR = f"""
select {_COLUMNS}, exists (
    select 1 from content_unlocks u where u.content_id = content.id and u.user_id = $4
) as unlocked
from content where creator_id = $1 and ($2::bigint is null or id < $2)
order by id desc limit $3
"""


async def list_by_creator(
    conn: Connection, creator_id: str, *, before_id: int | None, limit: int, viewer_id: str
) -> list[tuple[ContentRow, bool]]:
    """A creator's posts, newest first, each with whether the viewer bought it."""
    rows = await conn.fetch(SELECT_BY_CREATOR, creator_id, before_id, limit, viewer_id)
    return [
        (
            ContentRow.model_validate({k: v for k, v in row.items() if k != "unlocked"}),
            bool(row["unlocked"]),
        )
        for row in rows
    ]
