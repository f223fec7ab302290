"""What a push carries and what a provider answered."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class PushMessage:
    """The payload every provider carries, as JSON (docs/protocol.md, "Push payload")."""

    notification_id: int | None
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    # Web Push `Topic` (hashed to <= 32 base64url chars), FCM `collapse_key`,
    # `apns-collapse-id` (<= 64 bytes).
    collapse_key: str | None
    # The user's unread count.
    badge: int

    def payload(self) -> dict[str, Any]:
        """The JSON object sent to the device (the same fields on every provider)."""
        return {
            "notification_id": self.notification_id,
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "collapse_key": self.collapse_key,
            "badge": self.badge,
        }


class Outcome(StrEnum):
    """How a send ended; a metric label and what the queue acts on."""

    DELIVERED = "delivered"  # the provider accepted it
    GONE = "gone"  # the device is no more: forget it
    RETRY = "retry"  # 429, 5xx, no answer: try again later (honour `retry_after`)
    FAILED = "failed"  # anything else: do not retry


@dataclass(frozen=True)
class PushResult:
    """One provider's answer to one send."""

    outcome: Outcome
    status: int | None  # the provider's HTTP status, None if there was no answer
    retry_after: float | None  # seconds, from Retry-After (429/503), else None
    detail: str  # a short provider answer, for logs and `backchannel push test`
