"""The `/notifications` namespace: stored notifications, delivered live and synced on return."""

from __future__ import annotations

from typing import Any

from backchannel.domain import notification_inbox, notification_push
from backchannel.domain.auth import Identity
from backchannel.domain.event_models import UnreadNotice
from backchannel.domain.media import MediaStatus
from backchannel.domain.notification_models import (
    Notification,
    ReadRequest,
    SyncPage,
    SyncRequest,
    UnreadCount,
)
from backchannel.handlers.base import AuthenticatedNamespace, EventContext, event
from backchannel.rooms.names import Namespace


class NotificationsNamespace(AuthenticatedNamespace):
    """Stored notifications, delivered live and synced on return."""

    path = Namespace.NOTIFICATIONS
    server_events = {
        "notification": Notification,
        "notifications:unread": UnreadNotice,
        "media:ready": MediaStatus,
    }

    async def on_authenticated(self, sid: str, identity: Identity, auth: Any) -> None:
        """Join the subscriber room of each creator the user subscribes to (audience emits)."""
        await notification_push.join_audience_rooms(self.rt, sid, identity.user_id)

    @event("notifications:sync", SyncRequest)
    async def sync(self, ctx: EventContext, payload: SyncRequest) -> SyncPage:
        """What the user missed after a cursor, with the unread count."""
        return await notification_inbox.sync(self.rt, ctx.user_id, payload)

    @event("notifications:read", ReadRequest)
    async def read(self, ctx: EventContext, payload: ReadRequest) -> UnreadCount:
        """Mark some or all read."""
        return await notification_inbox.mark_read(self.rt, ctx.user_id, payload)
