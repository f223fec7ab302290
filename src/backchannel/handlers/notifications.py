"""The `/notifications` namespace: stored notifications, delivered live and synced on return."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace


class NotificationsNamespace(AuthenticatedNamespace):
    """Stored notifications, delivered live and synced on return."""

    path = Namespace.NOTIFICATIONS
