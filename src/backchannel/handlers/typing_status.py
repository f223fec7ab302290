"""The `/typing` namespace: typing indicators between the participants of a conversation."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.rooms.names import Namespace


class TypingStatusNamespace(AuthenticatedNamespace):
    """Typing indicators between the participants of a conversation."""

    path = Namespace.TYPING
