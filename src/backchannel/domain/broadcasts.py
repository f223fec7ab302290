"""`ppv:broadcast`: a creator's paid message to every active subscriber at once.

Persisted set-based (one message per subscriber's 1:1 conversation, a handful of statements
whatever the audience) and delivered with one `/chat` room emit (`message:broadcast`) to
`subscribers_room(creator)`: every recipient sees the same locked rendering, so one payload
serves them all. A recipient's own copy (its id, conversation and seq) comes with
`messages:sync` / history of that conversation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backchannel.domain import delivery
from backchannel.domain.content import MediaItem
from backchannel.domain.delivery import Deliveries
from backchannel.domain.payments import Cents
from backchannel.errors import Forbidden, Invalid
from backchannel.persistence import broadcasts
from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class BroadcastRequest(BaseModel):
    """`ppv:broadcast`."""

    model_config = ConfigDict(extra="forbid")
    client_id: Annotated[str, Field(min_length=1, max_length=100)]
    body: Annotated[str, Field(max_length=10_000)] | None = None
    media: Annotated[list[MediaItem], Field(max_length=20)] = []
    price_cents: Cents
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    preview_text: Annotated[str, Field(max_length=280)] | None = None


class BroadcastResult(BaseModel):
    """The ack of `ppv:broadcast`."""

    broadcast_id: str
    recipients: int


async def ppv_broadcast(
    rt: Runtime, creator_id: str, role: str, request: BroadcastRequest
) -> BroadcastResult:
    """Persist a paid message for every active subscriber, then one room emit."""
    if role != "creator":
        raise Forbidden("only creators broadcast paid messages")
    if not request.body and not request.media:
        raise Invalid("a broadcast needs a body or media", [{"field": "body", "message": "empty"}])
    media = [item.model_dump() for item in request.media]
    async with rt.db.transaction() as conn:
        broadcast_id, created = await broadcasts.claim(conn, creator_id, request.client_id)
        if not created:
            count = await broadcasts.recipients(conn, creator_id, request.client_id)
            return BroadcastResult(broadcast_id=str(broadcast_id), recipients=count)
        # Only a new broadcast counts against the limit (a retry returns the first result);
        # refusing here rolls the claim back.
        await rt.limiter.hit(
            f"broadcast:{creator_id}", Rate.parse(rt.settings.broadcast_rate_limit)
        )
        count, created_at = await broadcasts.fan_out(
            conn,
            broadcast_id=broadcast_id,
            creator_id=creator_id,
            client_id=request.client_id,
            body=request.body,
            media=media,
            price_cents=request.price_cents,
            currency=request.currency,
            preview_text=request.preview_text,
        )
        fx = Deliveries(conn)
        if count:
            payload: dict[str, Any] = {
                "broadcast_id": str(broadcast_id),
                "sender_id": creator_id,
                "client_id": request.client_id,
                "created_at": (created_at or datetime.now(UTC)).isoformat(),
                "body": None,
                "media": [],
                "price_cents": request.price_cents,
                "currency": request.currency,
                "locked": True,
                "preview": {"text": request.preview_text, "media_count": len(media)},
            }
            await fx.to_room(
                Namespace.CHAT, subscribers_room(creator_id), "message:broadcast", payload
            )
    await delivery.finish(rt, fx)
    return BroadcastResult(broadcast_id=str(broadcast_id), recipients=count)
