"""The `/typing` namespace: typing indicators between the participants of a conversation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from backchannel.domain.auth import Identity
from backchannel.domain.chat import Id
from backchannel.domain.event_models import Empty, TypingNotice
from backchannel.handlers.base import AuthenticatedNamespace, EventContext, event
from backchannel.rooms.names import Namespace


class TypingEvent(BaseModel):
    """`typing:start` / `typing:stop`."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: Id


class TypingStatusNamespace(AuthenticatedNamespace):
    """Typing indicators between the participants of a conversation."""

    path = Namespace.TYPING
    server_events = {"typing": TypingNotice}

    @event("typing:start", TypingEvent, ack=Empty)
    async def start(self, ctx: EventContext, payload: TypingEvent) -> dict[str, Any]:
        """The caller started (or is still) typing."""
        await self.rt.typing.start(ctx.user_id, ctx.sid, payload.conversation_id)
        return {}

    @event("typing:stop", TypingEvent, ack=Empty)
    async def stop(self, ctx: EventContext, payload: TypingEvent) -> dict[str, Any]:
        """The caller stopped typing."""
        await self.rt.typing.stop(ctx.user_id, ctx.sid, payload.conversation_id)
        return {}

    async def on_disconnected(self, sid: str, identity: Identity) -> None:
        """Whatever this socket was typing stops with it."""
        await self.rt.typing.socket_gone(sid)
