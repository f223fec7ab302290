"""The `/chat` namespace: messaging: conversations, messages, read state and sync."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace


class ChatNamespace(AuthenticatedNamespace):
    """Messaging: conversations, messages, read state and sync."""

    path = Namespace.CHAT
