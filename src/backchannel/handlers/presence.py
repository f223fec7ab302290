"""The `/presence` namespace: who is online, for those allowed to watch."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace


class PresenceNamespace(AuthenticatedNamespace):
    """Who is online, for those allowed to watch."""

    path = Namespace.PRESENCE
