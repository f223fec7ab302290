"""Every namespace Backchannel serves."""

from __future__ import annotations

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.handlers.chat import ChatNamespace
from backchannel.handlers.notifications import NotificationsNamespace
from backchannel.handlers.ppv import PpvNamespace
from backchannel.handlers.presence import PresenceNamespace
from backchannel.handlers.typing_status import TypingStatusNamespace

NAMESPACE_CLASSES: tuple[type[AuthenticatedNamespace], ...] = (
    ChatNamespace,
    TypingStatusNamespace,
    PresenceNamespace,
    PpvNamespace,
    NotificationsNamespace,
)
