"""Webhook events: the catalogue of types, and writing them in the transaction that caused them.

Chat send is the hottest path, so each node keeps `WebhookHub.types`, the event types some
live endpoint subscribes to, re-read at once on every node when an endpoint changes (this
node directly, the others through a Redis channel) and every `webhook_types_refresh_seconds`
in case an announcement was missed. A type nobody wants costs a set look-up and nothing
else; a wanted one costs one set-based statement per transaction, however many endpoints.

Call sites that only hold a connection (stored notifications) use `record_in`, whose one
statement stores nothing when no endpoint wants the type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from backchannel.persistence import webhook_endpoints as endpoints_store
from backchannel.persistence import webhooks as store
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import Appended, StoredMessage
from backchannel.persistence.webhooks import NewEvent

if TYPE_CHECKING:
    from backchannel.domain.delivery import Deliveries
    from backchannel.persistence.database import Database
    from backchannel.persistence.purchases import Purchase
    from backchannel.persistence.reports import Report
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"
MESSAGE_READ = "message.read"
PURCHASE_COMPLETED = "purchase.completed"
PURCHASE_REFUNDED = "purchase.refunded"
SUBSCRIPTION_STARTED = "subscription.started"
SUBSCRIPTION_UPDATED = "subscription.updated"
SUBSCRIPTION_ENDED = "subscription.ended"
TIP_RECEIVED = "tip.received"
USER_ONLINE = "user.online"
USER_OFFLINE = "user.offline"
NOTIFICATION_CREATED = "notification.created"
REPORT_CREATED = "report.created"
USER_BANNED = "user.banned"

EVENT_TYPES: tuple[str, ...] = (
    MESSAGE_CREATED,
    MESSAGE_READ,
    PURCHASE_COMPLETED,
    PURCHASE_REFUNDED,
    SUBSCRIPTION_STARTED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_ENDED,
    TIP_RECEIVED,
    USER_ONLINE,
    USER_OFFLINE,
    NOTIFICATION_CREATED,
    REPORT_CREATED,
    USER_BANNED,
)
ALL = "*"


def changes_channel(redis_prefix: str) -> str:
    """The Redis channel on which a node says it changed an endpoint (others re-read)."""
    return f"{redis_prefix}:webhook-endpoints-changed"


class WebhookHub:
    """This node's view of which event types have endpoints, and the worker's wake-up."""

    def __init__(
        self, db: Database, on_refresh: Callable[[frozenset[str]], None] | None = None
    ) -> None:
        """`db`: where endpoints are read from on refresh; `on_refresh` sees each new view."""
        self._db = db
        self._on_refresh = on_refresh
        self.types: frozenset[str] = frozenset()
        self.loaded = False
        self.wakeup = asyncio.Event()

    def wants(self, event_type: str) -> bool:
        """Whether some live endpoint subscribes to `event_type` (as last read; until the
        first read, assume so: the statement itself checks the endpoints)."""
        types = self.types
        return event_type in types or ALL in types or not self.loaded

    async def refresh(self) -> None:
        """Re-read the subscribed types."""
        async with self._db.connection() as conn:
            self.types = await endpoints_store.subscribed_types(conn)
        self.loaded = True
        if self._on_refresh is not None:
            self._on_refresh(self.types)

    def wake(self) -> None:
        """Something was committed for delivery: the worker looks now, not at its next poll."""
        self.wakeup.set()

    # `persistence.message_appender.AppendHook`: sends written by group commit.
    def wanted(self) -> bool:
        """Whether appended messages must be recorded as `message.created`."""
        return self.wants(MESSAGE_CREATED)

    async def record_appended(self, conn: Connection, appended: Sequence[Appended]) -> None:
        """Record `message.created` for messages just appended, in their transaction."""
        await store.record_events(conn, [message_created(stored) for stored, _ in appended])

    def appended_committed(self) -> None:
        """The appended messages' transaction committed."""
        self.wake()


def _hub(rt: Runtime) -> WebhookHub | None:
    return rt.webhooks


async def record(rt: Runtime, conn: Connection, events: Sequence[NewEvent]) -> bool:
    """Inside the caller's transaction, store the events some endpoint wants (one statement);
    returns whether the caller should `wake` the worker after commit."""
    hub = _hub(rt)
    if hub is None:
        return False
    wanted = [event for event in events if hub.wants(event.type)]
    if not wanted:
        return False
    await store.record_events(conn, wanted)
    return True


async def record_broadcast(rt: Runtime, conn: Connection, broadcast_id: int) -> bool:
    """`message.created` for every copy of a broadcast settled in this transaction (one
    statement); returns whether the caller should `wake` the worker after commit."""
    hub = _hub(rt)
    if hub is None or not hub.wants(MESSAGE_CREATED):
        return False
    return await store.record_broadcast_copies(conn, broadcast_id) > 0


async def record_in(conn: Connection, events: Sequence[NewEvent]) -> None:
    """`record` for callers without the runtime: the statement itself checks the endpoints."""
    await store.record_events(conn, events)


def wake(rt: Runtime) -> None:
    """After commit: let this node's worker deliver what was just recorded."""
    hub = _hub(rt)
    if hub is not None:
        hub.wake()


async def record_now(rt: Runtime, events: Sequence[NewEvent]) -> None:
    """Record events that are not part of another write (presence), in their own transaction."""
    hub = _hub(rt)
    if hub is None or not any(hub.wants(e.type) for e in events):
        return
    async with rt.db.transaction() as conn:
        woke = await record(rt, conn, events)
    if woke:
        hub.wake()


# -- payloads --------------------------------------------------------------------------------


def message_created(stored: StoredMessage) -> NewEvent:
    """`message.created`: ids, conversation, sender, seq, price; the body only for endpoints
    that set `include_bodies`."""
    data: dict[str, Any] = {
        "message_id": str(stored.id),
        "conversation_id": str(stored.conversation_id),
        "sender_id": stored.sender_id,
        "seq": stored.seq,
        "paid": stored.price_cents is not None,
        "price_cents": stored.price_cents,
        "currency": stored.currency,
        "media_count": len(stored.media),
        "broadcast_id": str(stored.broadcast_id) if stored.broadcast_id is not None else None,
        "created_at": stored.created_at.isoformat(),
    }
    private = {"body": stored.body, "preview_text": stored.preview_text}
    return NewEvent(MESSAGE_CREATED, data, private)


def event(event_type: str, data: dict[str, Any]) -> NewEvent:
    """An event of a type in the catalogue, with JSON-ready data."""
    assert event_type in EVENT_TYPES, event_type
    return NewEvent(event_type, data)


def purchase_data(purchase: Purchase) -> dict[str, Any]:
    """What every purchase event says of the purchase."""
    return {
        "purchase_id": purchase.id,
        "kind": purchase.kind,
        "buyer_id": purchase.buyer_id,
        "creator_id": purchase.creator_id,
        "target_id": purchase.target_id,
        "amount_cents": purchase.amount_cents,
        "fee_cents": purchase.fee_cents,
        "currency": purchase.currency,
        "pay_with": purchase.pay_with,
        "status": purchase.status,
        "refunded_cents": purchase.refunded_cents,
        "disputed_cents": purchase.disputed_cents,
    }


def purchase_completed(purchase: Purchase) -> list[NewEvent]:
    """`purchase.completed`, and `tip.received` too when it is a tip."""
    events = [event(PURCHASE_COMPLETED, purchase_data(purchase))]
    if purchase.kind == "tip" and purchase.creator_id:
        events.append(
            event(
                TIP_RECEIVED,
                {
                    "purchase_id": purchase.id,
                    "from_user_id": purchase.buyer_id,
                    "creator_id": purchase.creator_id,
                    "amount_cents": purchase.amount_cents,
                    "currency": purchase.currency,
                },
            )
        )
    return events


async def record_fx(rt: Runtime, fx: Deliveries, events: Sequence[NewEvent]) -> None:
    """`record` inside a money transaction; the worker is woken once it has committed."""
    if await record(rt, fx.conn, events):
        fx.after_commit.append(wake_step)


async def wake_step(rt: Runtime) -> None:
    """`wake` as an after-commit step."""
    wake(rt)


def report_created(report: Report) -> NewEvent:
    """`report.created`: a new report (a repeat by the same reporter is not one)."""
    return event(
        REPORT_CREATED,
        {
            "report_id": str(report.id),
            "reporter_id": report.reporter_id,
            "target_type": report.target_type,
            "target_id": report.target_id,
            "reason": report.reason,
            "urgent": report.urgent,
            "created_at": report.created_at.isoformat(),
        },
    )
