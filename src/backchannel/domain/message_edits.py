"""Edit and unsend: `message:edit`, `message:delete`, and moderators' deletes.

A deleted message stays in place as a tombstone (`deleted: true`, `body: null`, `media: []`,
the same `seq`), so every read path stays gap-free. A paid message its sender withdraws stays
whole for those who bought it; a moderator's delete is a tombstone for everyone and is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from backchannel.domain import filter_rules
from backchannel.domain.chat import MAX_BODY_CHARS, Id, best_effort, member_conversation, parse_id
from backchannel.domain.chat_views import Message, render_for_viewer
from backchannel.domain.event_models import MessageDeleted
from backchannel.errors import Conflict, Forbidden, Invalid, NotFound
from backchannel.persistence import audit, conversations, messages
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import StoredMessage
from backchannel.rooms.membership import others
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

STAFF = frozenset({"moderator", "admin"})


class EditMessage(BaseModel):
    """`message:edit`."""

    model_config = ConfigDict(extra="forbid")
    message_id: Id
    body: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, max_length=MAX_BODY_CHARS)
    ]


class DeleteMessage(BaseModel):
    """`message:delete`."""

    model_config = ConfigDict(extra="forbid")
    message_id: Id


async def edit_message(
    rt: Runtime, user_id: str, request: EditMessage, *, origin_sid: str | None = None
) -> Message:
    """Its sender changes a message's body within the edit window; everyone else is told."""
    message_id = parse_id(request.message_id, "message")
    if not request.body:
        raise Invalid("an edit needs a body", [{"field": "body", "message": "empty"}])
    body, _ = await filter_rules.screen_text(rt, request.body, "body")
    assert body is not None
    window = rt.settings.message_edit_window_seconds
    async with rt.db.transaction() as conn:
        locked = await messages.lock_message(conn, message_id)
        if locked is None:
            raise NotFound("no such message")
        stored, unlock_count = locked
        conversation = await member_conversation(conn, stored.conversation_id, user_id)
        if stored.sender_id != user_id:
            raise Forbidden("only its sender edits a message", {"reason": "not_sender"})
        if stored.deleted_at is not None:
            raise Conflict("this message was deleted")
        if datetime.now(UTC) - stored.created_at > timedelta(seconds=window):
            raise Forbidden(
                f"a message can be edited for {window} seconds after it is sent",
                {"reason": "edit_window", "window_seconds": window},
            )
        if stored.price_cents is not None and unlock_count > 0:
            raise Forbidden(
                "someone has bought this message; it can no longer be edited",
                {"reason": "unlocked"},
            )
        edited = await messages.set_body(conn, message_id, body)
    sender_view = render_for_viewer(edited, user_id, rt.media_links)
    recipients = others(conversation.participant_ids, user_id)
    blockers = await rt.blocks.blockers(user_id, recipients)
    recipients = [uid for uid in recipients if uid not in blockers]
    with best_effort("message:updated"):
        await rt.emitter.to_user(
            Namespace.CHAT, user_id, "message:updated", sender_view, skip_sid=origin_sid
        )
        # Nobody has unlocked a paid message that can still be edited: one view fits all.
        others_view = render_for_viewer(edited, "", rt.media_links)
        await rt.emitter.to_users(Namespace.CHAT, recipients, "message:updated", others_view)
    return sender_view


async def delete_message(rt: Runtime, user_id: str, role: str, request: DeleteMessage) -> Message:
    """Unsend one's own message, or (moderators, admins) delete anyone's."""
    return await tombstone(rt, user_id, role, parse_id(request.message_id, "message"))


async def tombstone(rt: Runtime, actor_id: str, role: str, message_id: int) -> Message:
    """Make a message a tombstone and tell the sockets it affects; returns the actor's view."""
    async with rt.db.transaction() as conn:
        stored, participants, kept_by = await tombstone_in(conn, actor_id, role, message_id)
    await announce_deleted(rt, stored, participants, kept_by)
    return render_for_viewer(stored, actor_id, rt.media_links)


async def tombstone_in(
    conn: Connection, actor_id: str, role: str, message_id: int
) -> tuple[StoredMessage, list[str], set[str]]:
    """`tombstone` inside the caller's transaction: (the message, its conversation's members,
    the buyers who keep it whole)."""
    locked = await messages.lock_message(conn, message_id)
    if locked is None:
        raise NotFound("no such message")
    stored, _ = locked
    staff = role in STAFF
    if staff and stored.sender_id != actor_id:
        row = await conversations.get_conversation(conn, stored.conversation_id)
        if row is None:
            raise NotFound("no such conversation")
        by = "moderator"
    else:
        row = await member_conversation(conn, stored.conversation_id, actor_id)
        if stored.sender_id != actor_id:
            raise Forbidden("only its sender (or a moderator) deletes a message")
        by = "sender"
    done = await messages.tombstone(conn, message_id, by)
    if done is None:
        return stored, [], set()  # already deleted: nothing new to tell
    kept_by: set[str] = set()
    if by == "sender" and done.price_cents is not None:
        kept_by = await messages.buyers(conn, message_id)
    if by == "moderator":
        await audit.audit(
            conn,
            "message.deleted",
            actor_id=actor_id,
            target_id=stored.sender_id,
            details={"message_id": str(message_id), "conversation_id": str(done.conversation_id)},
        )
    return done, row.participant_ids, kept_by


async def announce_deleted(
    rt: Runtime, stored: StoredMessage, participants: list[str], kept_by: set[str]
) -> None:
    """`message:deleted` to every socket that now sees a tombstone (not buyers who keep it)."""
    affected = [uid for uid in participants if uid not in kept_by]
    if not affected:
        return
    event = MessageDeleted(
        message_id=str(stored.id), conversation_id=str(stored.conversation_id), seq=stored.seq
    )
    with best_effort("message:deleted"):
        await rt.emitter.to_users(Namespace.CHAT, affected, "message:deleted", event)
