"""What clients see of conversations and messages, and the one per-viewer rendering.

`render_for_viewer` is the only place a stored message becomes wire data. Every path that
sends a message toward someone (live events, sync, history, the conversation list, unlock
results) goes through it, so a viewer who has not unlocked a paid message never receives its
body or media.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from backchannel.domain.media_views import (
    ExternalMedia,
    MediaView,
    PreviewMedia,
    previews,
    render_media,
)
from backchannel.media.links import MediaLinks
from backchannel.persistence.conversations import ConversationRow
from backchannel.persistence.messages import StoredMessage
from backchannel.rooms.membership import sees_whole

# One attachment: an upload with links signed for the viewer, or an external `{url, type}`.
Media = MediaView | ExternalMedia


class Preview(BaseModel):
    """What a locked paid message shows: the teaser text, how much media it holds, and for
    each upload its shape and blurred preview (never a full-size link)."""

    text: str | None
    media_count: int
    media: list[PreviewMedia] = []


class Message(BaseModel):
    """A message as one viewer sees it (PROTOCOL.md, Message)."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    client_id: str
    created_at: datetime
    body: str | None
    media: list[Media]
    price_cents: int | None
    currency: str
    locked: bool
    # Present on paid messages (locked or not), null on free ones.
    preview: Preview | None = None
    # A tombstone keeps its seq: `deleted: true`, `body: null`, `media: []`.
    deleted: bool = False
    edited_at: datetime | None = None


class Conversation(BaseModel):
    """A conversation (PROTOCOL.md, `conversation:open`)."""

    id: str
    kind: str
    participant_ids: list[str]
    title: str | None
    created_at: datetime
    # Until when the viewer has muted it (no `message` notifications), else null.
    muted_until: datetime | None = None

    @classmethod
    def of(cls, row: ConversationRow) -> Conversation:
        """The wire view of a stored conversation."""
        return cls(
            id=str(row.id),
            kind=row.kind,
            participant_ids=row.participant_ids,
            title=row.title,
            created_at=row.created_at,
        )


class ConversationSummary(Conversation):
    """A row of `conversation:list`: the conversation with its last message and unread count."""

    last_message: Message | None
    unread_count: int
    last_read_seq: int
    last_seq: int


class ConversationPage(BaseModel):
    """A page of the conversation list."""

    items: list[ConversationSummary]
    next_cursor: str | None


class SyncPage(BaseModel):
    """`messages:sync`: messages after a seq, oldest first."""

    items: list[Message]
    has_more: bool


class HistoryPage(BaseModel):
    """`GET /conversations/{id}/messages`: newest first; `next_cursor` is the next `before_seq`."""

    items: list[Message]
    next_cursor: str | None


class ReadState(BaseModel):
    """`message:read`'s ack."""

    conversation_id: str
    seq: int
    unread_count: int


def render_for_viewer(message: StoredMessage, viewer_id: str, links: MediaLinks) -> Message:
    """The message as `viewer_id` may see it: whole, or locked with only a preview.

    `message.unlocked` must have been read for this same viewer (the persistence reads do).
    Media links in it are signed for `viewer_id` and expire after the links' TTL.
    """
    paid = message.price_cents is not None
    if is_tombstone(message, viewer_id):
        return Message(
            id=str(message.id),
            conversation_id=str(message.conversation_id),
            seq=message.seq,
            sender_id=message.sender_id,
            client_id=message.client_id,
            created_at=message.created_at,
            body=None,
            media=[],
            price_cents=message.price_cents,
            currency=message.currency,
            locked=False,
            deleted=True,
            edited_at=message.edited_at,
        )
    preview = (
        Preview(
            text=message.preview_text,
            media_count=len(message.media),
            media=previews(message.media, viewer_id, links),
        )
        if paid
        else None
    )
    whole = sees_whole(message.price_cents, message.sender_id, viewer_id, message.unlocked)
    return Message(
        id=str(message.id),
        conversation_id=str(message.conversation_id),
        seq=message.seq,
        sender_id=message.sender_id,
        client_id=message.client_id,
        created_at=message.created_at,
        body=message.body if whole else None,
        media=render_media(message.media, viewer_id, links) if whole else [],
        price_cents=message.price_cents,
        currency=message.currency,
        locked=not whole,
        preview=preview,
        edited_at=message.edited_at,
    )


def is_tombstone(message: StoredMessage, viewer_id: str) -> bool:
    """Whether `viewer_id` sees a deleted message as a tombstone.

    A paid message its sender withdrew stays whole for those who bought it (`unlocked` read
    for this viewer); a moderator's delete, or a free message's, is a tombstone for everyone.
    """
    if message.deleted_at is None:
        return False
    kept_by_buyer = (
        message.deleted_by == "sender"
        and message.price_cents is not None
        and message.unlocked
        and viewer_id != message.sender_id
    )
    return not kept_by_buyer
