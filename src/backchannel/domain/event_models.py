"""The payloads of server events that had no model of their own.

Each is the one description of an event: the code that emits it builds it from this model
(where the payload is assembled by hand) and the AsyncAPI document (`http/asyncapi.py`)
describes it from the same class, so the typed JS client cannot drift from what is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from backchannel.domain.chat_views import Message, Preview


class ErrorObject(BaseModel):
    """The contract's error object: a code from the catalogue, a message, optional details."""

    code: Literal[
        "invalid",
        "unauthorized",
        "token_expired",
        "forbidden",
        "not_found",
        "conflict",
        "payment_required",
        "rate_limited",
        "too_large",
        "unavailable",
        "internal",
    ]
    message: str
    details: Any = None


class Empty(BaseModel):
    """An ack with nothing to say (`typing:start`, `typing:stop`)."""


class RefreshAck(BaseModel):
    """`auth:refresh`'s ack: when the socket's new token expires."""

    expires_at: str


class SessionExpiring(BaseModel):
    """`session:expiring`: the socket's token expires soon; send `auth:refresh`."""

    expires_at: str


class SessionEnded(BaseModel):
    """`session:ended`: the session was ended (logout elsewhere, reuse, deletion)."""

    reason: str


class ServerResync(BaseModel):
    """`server:resync`: this node missed live events; sync what you hold."""

    reason: str


class ServerShutdown(BaseModel):
    """`server:shutdown`: this node is draining; the client reconnects (to another node)."""

    reason: str
    reconnect: bool


class ReadReceipt(BaseModel):
    """`message:read` (server → client): someone's read pointer moved."""

    conversation_id: str
    user_id: str
    seq: int


class MessageDeleted(BaseModel):
    """`message:deleted`: a message became a tombstone for this viewer (its `seq` stays)."""

    message_id: str
    conversation_id: str
    seq: int


class MessagesReplayed(BaseModel):
    """`messages:replayed`: the replay on connect of one conversation is done."""

    conversation_id: str
    up_to_seq: int
    has_more: bool


class MessageBroadcast(BaseModel):
    """`message:broadcast`: a creator's paid broadcast, locked; the copy is in your 1:1."""

    broadcast_id: str
    sender_id: str
    client_id: str
    created_at: datetime
    body: None = None
    media: list[Any] = []
    price_cents: int
    currency: str
    locked: Literal[True] = True
    preview: Preview


class TypingNotice(BaseModel):
    """`typing`: another participant started or stopped typing."""

    conversation_id: str
    user_id: str
    typing: bool


class PpvUnlocked(BaseModel):
    """`ppv:unlocked`: the buyer now sees the message whole."""

    message_id: str
    conversation_id: str
    message: Message


class PpvLocked(BaseModel):
    """`ppv:locked`: a refund or dispute revoked the unlock; `message` is locked again."""

    message_id: str
    conversation_id: str
    reason: Literal["refund", "dispute"]
    message: Message


class PpvPurchased(BaseModel):
    """`ppv:purchased` (to the creator): a fan bought a message or content."""

    message_id: str | None = None
    content_id: str | None = None
    kind: Literal["ppv_message", "content"]
    buyer_id: str
    amount_cents: int
    currency: str
    purchase_id: str


class ContentUnlocked(BaseModel):
    """`content:unlocked`: the buyer may now read the content."""

    content_id: str


class ContentLocked(BaseModel):
    """`content:locked`: a refund or dispute revoked the content purchase."""

    content_id: str
    reason: str


class TipReceived(BaseModel):
    """`tip:received` (to the creator)."""

    purchase_id: str
    from_user_id: str
    amount_cents: int
    currency: str


class PurchaseUpdated(BaseModel):
    """`ppv:purchase_updated`: what is refunded or disputed of a purchase changed."""

    purchase_id: str
    kind: str
    amount_cents: int
    refunded_cents: int
    disputed_cents: int
    currency: str
    status: str


class SubscriptionStarted(BaseModel):
    """`subscription:started` (to the creator)."""

    fan_id: str
    creator_id: str
    status: str
    current_period_end: datetime | None


class SubscriptionEnded(BaseModel):
    """`subscription:ended` (to the creator)."""

    fan_id: str
    creator_id: str
    status: str


class UnreadNotice(BaseModel):
    """`notifications:unread`: the user's unread count now (authoritative)."""

    count: int


def checked(model: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` validated against its event's model, as JSON-safe data.

    Emit sites that assemble a payload by hand pass it through here, so what is sent is what
    the AsyncAPI document says; fields left out stay out (`ppv:purchased` names either
    `message_id` or `content_id`).
    """
    return model.model_validate(payload).model_dump(mode="json", exclude_unset=True)
