"""The `/chat` namespace: conversations, messages, read state and sync."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from backchannel.domain import chat, chat_replay, conversations, message_edits
from backchannel.domain.auth import Identity
from backchannel.domain.chat_views import (
    Conversation,
    ConversationPage,
    Message,
    ReadState,
    SyncPage,
)
from backchannel.domain.event_models import (
    MessageBroadcast,
    MessageDeleted,
    MessagesReplayed,
    ReadReceipt,
)
from backchannel.handlers.base import AuthenticatedNamespace, EventContext, event
from backchannel.rooms.names import Namespace
from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


class ChatNamespace(AuthenticatedNamespace):
    """Messaging: conversations, messages, read state and sync."""

    path = Namespace.CHAT
    server_events = {
        "message:new": Message,
        "message:read": ReadReceipt,
        "conversation:new": Conversation,
        "messages:replayed": MessagesReplayed,
        "message:broadcast": MessageBroadcast,
        "message:updated": Message,
        "message:deleted": MessageDeleted,
    }

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._replays: set[asyncio.Task[None]] = set()

    async def on_authenticated(self, sid: str, identity: Identity, auth: Any) -> None:
        """With `auth.last_seq`, replay what the socket missed once its connect is acked."""
        positions = chat_replay.replay_positions(auth)
        if positions:
            # A task: the replay must follow the CONNECT packet, which is sent after this returns.
            task = asyncio.create_task(self._replay(sid, identity.user_id, positions))
            self._replays.add(task)
            task.add_done_callback(self._replays.discard)

    async def _replay(self, sid: str, user_id: str, positions: dict[int, int]) -> None:
        try:
            await chat_replay.replay_missed(self.rt, user_id, sid, positions)
        except Exception:
            log.warning("replay on connect failed; the client can still sync", exc_info=True)

    @event("conversation:open", conversations.OpenConversation)
    async def open_conversation(
        self, ctx: EventContext, payload: conversations.OpenConversation
    ) -> Conversation:
        """Open a DM or a group."""
        return await conversations.open_conversation(
            self.rt, ctx.user_id, payload, origin_sid=ctx.sid, role=ctx.role
        )

    @event("conversation:list", conversations.ListConversations)
    async def list_conversations(
        self, ctx: EventContext, payload: conversations.ListConversations
    ) -> ConversationPage:
        """The caller's conversations with last message and unread count."""
        return await conversations.list_conversations(self.rt, ctx.user_id, payload)

    @event("message:send", chat.SendMessage)
    async def send(self, ctx: EventContext, payload: chat.SendMessage) -> Message:
        """Send (or idempotently re-send) a message."""
        return await chat.send_message(self.rt, ctx.user_id, ctx.role, payload)

    @event("message:read", chat.MarkRead)
    async def read(self, ctx: EventContext, payload: chat.MarkRead) -> ReadState:
        """Move the read pointer forward."""
        return await chat.mark_read(self.rt, ctx.user_id, payload, origin_sid=ctx.sid)

    @event("messages:sync", chat.SyncMessages)
    async def sync(self, ctx: EventContext, payload: chat.SyncMessages) -> SyncPage:
        """What the caller missed after a seq."""
        return await chat.sync_messages(self.rt, ctx.user_id, payload)

    @event("message:edit", message_edits.EditMessage)
    async def edit(self, ctx: EventContext, payload: message_edits.EditMessage) -> Message:
        """Change one's own message within the edit window."""
        return await message_edits.edit_message(self.rt, ctx.user_id, payload, origin_sid=ctx.sid)

    @event("message:delete", message_edits.DeleteMessage)
    async def delete(self, ctx: EventContext, payload: message_edits.DeleteMessage) -> Message:
        """Unsend one's own message; moderators and admins delete any."""
        return await message_edits.delete_message(self.rt, ctx.user_id, ctx.role, payload)
