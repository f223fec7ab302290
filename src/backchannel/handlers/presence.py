"""The `/presence` namespace: who is online, for those allowed to watch.

Which sockets count: every authenticated socket of a user on any namespace (the contract's
"any of their sockets"); the base namespace tells the tracker, so `/presence` itself only
answers watch requests and status changes.
"""

from __future__ import annotations

from backchannel.domain import presence
from backchannel.domain.presence import (
    Presence,
    PresenceList,
    SetStatus,
    Unwatched,
    WatchRequest,
)
from backchannel.handlers.base import AuthenticatedNamespace, EventContext, event
from backchannel.rooms.names import Namespace


class PresenceNamespace(AuthenticatedNamespace):
    """Who is online, for those allowed to watch."""

    path = Namespace.PRESENCE
    server_events = {"presence": Presence}

    @event("presence:subscribe", WatchRequest)
    async def subscribe(self, ctx: EventContext, payload: WatchRequest) -> PresenceList:
        """Watch users' presence; answers their current status."""
        return await presence.watch(self.rt, ctx.user_id, ctx.role, ctx.sid, payload)

    @event("presence:unsubscribe", WatchRequest)
    async def unsubscribe(self, ctx: EventContext, payload: WatchRequest) -> Unwatched:
        """Stop watching users' presence."""
        return await presence.unwatch(self.rt, ctx.sid, payload)

    @event("presence:set", SetStatus)
    async def set_status(self, ctx: EventContext, payload: SetStatus) -> Presence:
        """Say you are away, or back online."""
        return await presence.set_status(self.rt, ctx.user_id, payload)
