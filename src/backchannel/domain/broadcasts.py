"""`ppv:broadcast`: a creator's paid message to every active subscriber at once.

Every recipient sees the same locked rendering, so one `/chat` room emit (`message:broadcast`
to `subscribers_room(creator)`) serves them all. It goes out as soon as the broadcast's row
(with its content) commits; each subscriber's own copy in their 1:1 conversation is written
right after ("settled", set-based, in one transaction), so the audience does not wait for
thousands of inserts. The creator's ack comes once the copies are written.

A recipient who reads before then does not miss their copy: every read that could show it
(`messages:sync`, history, the conversation list, replay on connect) first settles the
broadcasts it could contain — waiting for the sender's write, or doing it when the sender died.
A background sweep settles whatever nobody read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from backchannel.domain import delivery, screening, webhook_events
from backchannel.domain.chat_views import Preview
from backchannel.domain.content import MediaItem
from backchannel.domain.delivery import Deliveries
from backchannel.domain.event_models import MessageBroadcast
from backchannel.domain.media import MediaRef, attach_media, pick_media
from backchannel.domain.media_views import previews
from backchannel.domain.payment_models import Cents
from backchannel.errors import Forbidden, Invalid, Unavailable
from backchannel.inputs import require_https
from backchannel.media.links import MediaLinks
from backchannel.persistence import broadcasts
from backchannel.persistence.broadcasts import Broadcast, BroadcastContent
from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

# Unsettled this long, a broadcast's sender is presumed gone and the sweep settles it.
ABANDONED_AFTER_SECONDS = 5.0


# An uploaded item by id, or an external `{url, type}` (free messages and content only).
AttachmentIn = Annotated[
    MediaRef | MediaItem,
    PlainValidator(pick_media(MediaItem), json_schema_input_type=MediaRef | MediaItem),
]


class BroadcastRequest(BaseModel):
    """`ppv:broadcast`."""

    model_config = ConfigDict(extra="forbid")
    client_id: Annotated[str, Field(min_length=1, max_length=100)]
    body: Annotated[str, Field(max_length=10_000)] | None = None
    media: Annotated[list[AttachmentIn], Field(max_length=20)] = []
    price_cents: Cents
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    preview_text: Annotated[str, Field(max_length=280)] | None = None
    # "owners": skip subscribers who already bought any of this broadcast's media.
    exclude: Literal["owners"] | None = None


class BroadcastResult(BaseModel):
    """The ack of `ppv:broadcast`."""

    broadcast_id: str
    recipients: int


async def ppv_broadcast(
    rt: Runtime, creator_id: str, role: str, request: BroadcastRequest
) -> BroadcastResult:
    """Store the broadcast, announce it to the subscribers room, then write every copy."""
    if role != "creator":
        raise Forbidden("only creators broadcast paid messages")
    if not request.body and not request.media:
        raise Invalid("a broadcast needs a body or media", [{"field": "body", "message": "empty"}])
    require_https(
        [
            (f"media.{i}.url", str(m.url))
            for i, m in enumerate(request.media)
            if not isinstance(m, MediaRef)
        ],
        dev=rt.settings.env == "dev",
    )
    # A broadcast is new messages too: the filters and the moderation hook vet it first.
    screened = await screening.screen_message(
        rt,
        creator_id,
        None,
        body=request.body,
        preview_text=request.preview_text,
        media=[m.model_dump(mode="json") for m in request.media],
        price_cents=request.price_cents,
    )
    media = await attach_media(rt, creator_id, request.media, paid=True)
    content = BroadcastContent(
        body=screened.body,
        media=media,
        price_cents=request.price_cents,
        currency=request.currency,
        preview_text=screened.preview_text,
    )
    media_ids = [str(item["media_id"]) for item in media if "media_id" in item]
    # Only a new broadcast counts against the limit (a retry returns the first result). The
    # limit is checked before the transaction, never inside it: a slow or hung Redis must not
    # hold the claim's row locks (and a pooled connection) while it answers.
    async with rt.db.connection() as conn:
        retried = await broadcasts.get(conn, creator_id, request.client_id) is not None
    if not retried:
        await rt.limiter.hit(
            f"broadcast:{creator_id}", Rate.parse(rt.settings.broadcast_rate_limit)
        )
    async with rt.db.transaction() as conn:
        excluded = (
            await broadcasts.owners_of(conn, creator_id, media_ids)
            if request.exclude == "owners"
            else []
        )
        broadcast, created = await broadcasts.claim(
            conn, creator_id, request.client_id, content, excluded
        )
        fx = Deliveries(conn)
        if created:
            announcement = _announcement(broadcast, content, rt.media_links)
            if excluded:
                # The subscribers room would reach the excluded owners too: one emit per fan.
                for fan_id in await broadcasts.audience(conn, creator_id, excluded):
                    await fx.to_user(Namespace.CHAT, fan_id, "message:broadcast", announcement)
            else:
                await fx.to_room(
                    Namespace.CHAT, subscribers_room(creator_id), "message:broadcast", announcement
                )
    await delivery.finish(rt, fx)
    if not broadcast.settled:
        await _settle_after_commit(rt, broadcast.id)
        async with rt.db.connection() as conn:
            settled = await broadcasts.get(conn, creator_id, request.client_id)
        assert settled is not None
        broadcast = settled
    return BroadcastResult(broadcast_id=str(broadcast.id), recipients=broadcast.recipients)


def _announcement(
    broadcast: Broadcast, content: BroadcastContent, links: MediaLinks
) -> MessageBroadcast:
    """`message:broadcast`: the locked rendering every recipient's copy will have (its
    previews' links are signed for no one in particular: they show only the blurred image)."""
    return MessageBroadcast(
        broadcast_id=str(broadcast.id),
        sender_id=broadcast.creator_id,
        client_id=broadcast.client_id,
        created_at=broadcast.created_at,
        price_cents=content.price_cents,
        currency=content.currency,
        preview=Preview(
            text=content.preview_text,
            media_count=len(content.media),
            media=previews(content.media, "", links),
        ),
    )


# Waits between the attempts to write a committed broadcast's copies before giving up.
SETTLE_RETRY_DELAYS = (0.2, 0.5)


async def _settle_after_commit(rt: Runtime, broadcast_id: int) -> None:
    """`settle`, retried: the broadcast is already committed (and announced), so a failure
    here is logged and tried again rather than answered as if nothing had happened. If the
    database is still unreachable after the retries, `Unavailable` goes out as documented:
    the sweep writes the copies later and a retry with the same `client_id` answers."""
    for delay in SETTLE_RETRY_DELAYS:
        try:
            await settle(rt, broadcast_id)
            return
        except Unavailable:
            log.warning("broadcast %s: copies not written after commit; retrying", broadcast_id)
            await asyncio.sleep(delay)
    await settle(rt, broadcast_id)


async def settle(rt: Runtime, broadcast_id: int) -> None:
    """Make sure the broadcast's copies are written: write them, or wait for whoever is."""
    recorded = False
    async with rt.db.transaction() as conn:
        settled = await broadcasts.settle(conn, broadcast_id)
        if settled:
            recorded = await webhook_events.record_broadcast(rt, conn, broadcast_id)
    if recorded:
        webhook_events.wake(rt)


async def settle_for_viewer(rt: Runtime, viewer_id: str) -> None:
    """Before a read of the viewer's conversations: settle broadcasts that belong in them."""
    async with rt.db.connection() as conn:
        pending = await broadcasts.unsettled_for_viewer(conn, viewer_id)
    for broadcast_id in pending:
        await settle(rt, broadcast_id)


async def settle_abandoned_once(rt: Runtime, limit: int = 20) -> int:
    """One pass of the sweep; returns how many broadcasts it looked at."""
    async with rt.db.connection() as conn:
        abandoned = await broadcasts.unsettled_since(conn, ABANDONED_AFTER_SECONDS, limit)
    for broadcast_id in abandoned:
        log.info("settling broadcast %d left unsettled", broadcast_id)
        await settle(rt, broadcast_id)
    return len(abandoned)


async def run_sweeper(rt: Runtime) -> None:
    """Forever: settle broadcasts whose sender did not (it crashed, or its write failed)."""
    while True:
        await asyncio.sleep(rt.settings.outbox_poll_seconds)
        try:
            await settle_abandoned_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("broadcast sweep failed", exc_info=True)
