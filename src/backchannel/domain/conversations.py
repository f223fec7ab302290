"""Conversations: open a DM (one per pair) or a group, and list the caller's conversations.

Both transports call these; messages in a conversation are `chat.py`'s.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from backchannel.domain import blocks, broadcasts, dm_rules, filter_rules
from backchannel.domain.chat import Id, Title, best_effort, member_conversation, parse_id
from backchannel.domain.chat_views import (
    Conversation,
    ConversationPage,
    ConversationSummary,
    render_for_viewer,
)
from backchannel.errors import Invalid, NotFound
from backchannel.persistence import conversations, messages, users
from backchannel.rooms.membership import plan_participants
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

LIST_PAGE_DEFAULT, LIST_PAGE_MAX = 50, 100


class OpenConversation(BaseModel):
    """`conversation:open`: one other participant makes a DM, more make a group."""

    model_config = ConfigDict(extra="forbid")
    participant_ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]
    title: Title | None = None


class ListConversations(BaseModel):
    """`conversation:list` and `GET /conversations`."""

    model_config = ConfigDict(extra="forbid")
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=LIST_PAGE_MAX)] = LIST_PAGE_DEFAULT


async def open_conversation(
    rt: Runtime,
    user_id: str,
    request: OpenConversation,
    *,
    origin_sid: str | None = None,
    role: str = "fan",
) -> Conversation:
    """Open a DM (the same one for a pair, every time) or a new group."""
    plan = plan_participants(user_id, request.participant_ids, rt.settings.group_max_members)
    title, _ = await filter_rules.screen_text(rt, request.title, "title")
    async with rt.db.transaction() as conn:
        active = await users.active_user_ids(conn, list(plan.member_ids))
        if any(uid not in active for uid in plan.member_ids):
            raise NotFound(
                "no such user", [{"field": "participant_ids", "message": "unknown user"}]
            )
        if plan.direct_key is not None:
            other = plan.member_ids[1]
            await blocks.refuse_direct(conn, user_id, other)
            await dm_rules.check_open(rt, conn, user_id, role, other)
            conversation_id, created = await conversations.insert_direct(
                conn, title=title, direct_key=plan.direct_key, created_by=user_id
            )
        else:
            conversation_id = await conversations.insert_group(
                conn, title=title, created_by=user_id
            )
            created = True
        if created:
            await conversations.add_members(conn, conversation_id, list(plan.member_ids))
        row = await conversations.get_conversation(conn, conversation_id)
    assert row is not None
    conversation = Conversation.of(row)
    if created:
        # Everyone in it hears, the opener's other devices included; not the opening socket.
        with best_effort("conversation:new"):
            await rt.emitter.to_users(
                Namespace.CHAT,
                row.participant_ids,
                "conversation:new",
                conversation,
                skip_sid=origin_sid,
            )
    return conversation


def _encode_cursor(activity_at: datetime, conversation_id: int) -> str:
    raw = f"{activity_at.isoformat()}|{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, conversation_id = base64.urlsafe_b64decode(padded).decode().split("|")
        decoded = datetime.fromisoformat(stamp), int(conversation_id)
        if not 0 <= decoded[1] <= (1 << 63) - 1:
            raise ValueError("out of range")  # ids are bigint: Postgres would refuse it
        return decoded
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "bad cursor", [{"field": "cursor", "message": "use a next_cursor you were given"}]
        ) from None


async def list_conversations(
    rt: Runtime, user_id: str, request: ListConversations
) -> ConversationPage:
    """The caller's conversations, most recently active first, with last message and unread."""
    before = _decode_cursor(request.cursor) if request.cursor else None
    await broadcasts.settle_for_viewer(rt, user_id)
    async with rt.db.transaction() as conn:
        rows = await conversations.page_for_member(
            conn, user_id, before=before, limit=request.limit + 1
        )
        page = rows[: request.limit]
        last = await messages.at_seqs(
            conn,
            user_id,
            [(r.conversation.id, r.conversation.last_seq) for r in page if r.conversation.last_seq],
        )
    items = [
        ConversationSummary(
            **Conversation.of(r.conversation).model_dump(exclude={"muted_until"}),
            last_message=(
                render_for_viewer(last[r.conversation.id], user_id, rt.media_links)
                if r.conversation.id in last
                else None
            ),
            unread_count=r.unread_count,
            last_read_seq=r.last_read_seq,
            muted_until=r.muted_until,
            last_seq=r.conversation.last_seq,
        )
        for r in page
    ]
    next_cursor = (
        _encode_cursor(page[-1].activity_at, page[-1].conversation.id)
        if len(rows) > request.limit
        else None
    )
    return ConversationPage(items=items, next_cursor=next_cursor)


# "Muted until unmuted" is stored as the end of time, which a client can show as "always".
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


class MuteRequest(BaseModel):
    """`POST /conversations/{id}/mute`: until a time, or (no `until`) until unmuted."""

    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime | None = None


async def mute(
    rt: Runtime, user_id: str, conversation_id_text: str, request: MuteRequest | None
) -> Conversation:
    """No `message` notifications (nor pushes) for this conversation until then; live messages
    still arrive on open sockets. `DELETE` (request None) unmutes."""
    conversation_id = parse_id(conversation_id_text)
    until = None if request is None else (request.until or FOREVER)
    if until is not None and until <= datetime.now(UTC):
        raise Invalid("until is in the past", [{"field": "until", "message": "in the past"}])
    async with rt.db.transaction() as conn:
        row = await member_conversation(conn, conversation_id, user_id)
        await conversations.set_mute(conn, conversation_id, user_id, until)
    view = Conversation.of(row)
    view.muted_until = until
    return view
