"""Fans subscribing to creators through Stripe, and what an active subscription opens.

State comes only from signed Stripe events. Events may arrive in any order, so each state
carries the `created` time of the event that set it and an older event never overwrites a
newer one; within one second, a later stage of the lifecycle wins (`_RANK`). A canceled or
expired Stripe subscription never comes back: a new one replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from backchannel.domain import notices, webhook_events
from backchannel.domain.delivery import Deliveries
from backchannel.domain.event_models import SubscriptionEnded, SubscriptionStarted, checked
from backchannel.domain.stripe_gateway import NOT_CONFIGURED
from backchannel.errors import Conflict, Invalid, NotFound, Unavailable
from backchannel.persistence import subscriptions, users
from backchannel.persistence.subscriptions import Subscription
from backchannel.persistence.webhooks import NewEvent
from backchannel.rooms.live_rooms import SUBSCRIBER_NAMESPACES
from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "incomplete_expired": 5,
    "canceled": 5,
}
_TERMINAL = {"canceled", "incomplete_expired"}


class SubscriptionView(BaseModel):
    """A subscription as the fan sees it."""

    id: str
    fan_id: str
    creator_id: str
    status: str
    active: bool
    current_period_end: datetime | None
    cancel_at_period_end: bool
    price_cents: int | None

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionView:
        """The public view of a row (its fields, plus the derived `active`)."""
        return cls.model_validate(row, from_attributes=True)


class SubscriptionList(BaseModel):
    """`GET /subscriptions`."""

    items: list[SubscriptionView]
    next_cursor: str | None = None


class SubscriptionCheckout(BaseModel):
    """`POST /creators/{id}/subscription`."""

    checkout_url: str
    session_id: str


@dataclass(frozen=True)
class StripeState:
    """What one Stripe event says about one subscription."""

    stripe_subscription_id: str
    fan_id: str
    creator_id: str
    status: str
    version: datetime
    current_period_end: datetime | None = None
    cancel_at_period_end: bool | None = None
    price_cents: int | None = None


def supersedes(current: Subscription, new: StripeState) -> bool:
    """Whether `new` is a later state than what is stored (pure; tested alone)."""
    if current.stripe_subscription_id not in (None, new.stripe_subscription_id):
        # Another Stripe subscription for the same pair: a new one replaces an ended one;
        # the old one's late events never touch the new one.
        if not current.active:
            return current.state_version is None or new.version >= current.state_version
        return new.status in ("active", "trialing") and (
            current.state_version is None or new.version > current.state_version
        )
    if current.stripe_subscription_id is not None and current.status in _TERMINAL:
        return False
    if current.state_version is None:
        return True
    if new.version != current.state_version:
        return new.version > current.state_version
    return _RANK.get(new.status, 0) >= _RANK.get(current.status, 0)


async def apply_stripe_state(rt: Runtime, fx: Deliveries, state: StripeState) -> str:
    """Store a subscription state if it is newer; join or leave rooms when activity changes."""
    conn = fx.conn
    for user_id in (state.fan_id, state.creator_id):
        if not await users.user_exists(conn, user_id):
            return "unknown_user"
    current = await subscriptions.lock_or_create(conn, state.fan_id, state.creator_id)
    if not supersedes(current, state):
        return "stale_state_ignored"
    updated = await subscriptions.update_state(
        conn,
        int(current.id),
        status=state.status,
        stripe_subscription_id=state.stripe_subscription_id,
        current_period_end=state.current_period_end,
        cancel_at_period_end=state.cancel_at_period_end,
        price_cents=state.price_cents,
        version=state.version,
    )
    room = subscribers_room(state.creator_id)
    await webhook_events.record_fx(rt, fx, [_subscription_event(current, updated)])
    if updated.active and not current.active:
        await fx.join(SUBSCRIBER_NAMESPACES, state.fan_id, room)
        event = {
            "fan_id": state.fan_id,
            "creator_id": state.creator_id,
            "status": updated.status,
            "current_period_end": updated.current_period_end,
        }
        await fx.to_user(
            Namespace.PPV,
            state.creator_id,
            "subscription:started",
            checked(SubscriptionStarted, event),
        )
        await fx.to_user(
            Namespace.PPV, state.fan_id, "subscription:updated", SubscriptionView.of(updated)
        )
        await notices.notify(
            conn,
            fx,
            state.creator_id,
            "subscription.started",
            "New subscriber",
            event,
            dedupe_key=f"subscription:{state.stripe_subscription_id}:{state.version.isoformat()}",
        )
        return "subscription_started"
    if current.active and not updated.active:
        await fx.leave(SUBSCRIBER_NAMESPACES, state.fan_id, room)
        event = {"fan_id": state.fan_id, "creator_id": state.creator_id, "status": updated.status}
        await fx.to_user(
            Namespace.PPV, state.creator_id, "subscription:ended", checked(SubscriptionEnded, event)
        )
        await fx.to_user(
            Namespace.PPV, state.fan_id, "subscription:updated", SubscriptionView.of(updated)
        )
        return "subscription_ended"
    return "subscription_updated"


def _subscription_event(current: Subscription, updated: Subscription) -> NewEvent:
    """`subscription.started`/`ended` when activity changes, else `subscription.updated`."""
    if updated.active and not current.active:
        kind = webhook_events.SUBSCRIPTION_STARTED
    elif current.active and not updated.active:
        kind = webhook_events.SUBSCRIPTION_ENDED
    else:
        kind = webhook_events.SUBSCRIPTION_UPDATED
    view = SubscriptionView.of(updated).model_dump(mode="json")
    return webhook_events.event(kind, {"subscription_id": str(updated.id), **view})


async def start_checkout(rt: Runtime, fan_id: str, creator_id: str) -> SubscriptionCheckout:
    """A Stripe Checkout Session (subscription mode) at the creator's price."""
    if fan_id == creator_id:
        raise Invalid("you cannot subscribe to yourself", [{"field": "id", "message": "self"}])
    async with rt.db.connection() as conn:
        creator = await users.get_active_user(conn, creator_id)
        if creator is None or creator.role != "creator":
            raise NotFound("no such creator")
        if await subscriptions.is_active(conn, fan_id, creator_id):
            raise Conflict("you already subscribe to this creator")
    if creator.subscription_price_cents <= 0:
        raise Conflict("this creator has not set a subscription price")
    if not rt.stripe.configured:
        raise Unavailable(NOT_CONFIGURED)
    await rt.limiter.hit(f"checkout:{fan_id}", Rate.parse(rt.settings.checkout_rate_limit))
    metadata = {"bc_kind": "subscription", "bc_user_id": fan_id, "bc_creator_id": creator_id}
    session = await rt.stripe.checkout_subscription(
        price_cents=creator.subscription_price_cents,
        currency="usd",
        name=f"Subscription to {creator.display_name}",
        payer_id=fan_id,
        metadata=metadata,
        idempotency_key=f"bc-sub-{fan_id}-{creator_id}-{datetime.now().strftime('%Y%m%d%H%M')}",
    )
    return SubscriptionCheckout(checkout_url=session.url, session_id=session.id)


async def cancel(rt: Runtime, fan_id: str, creator_id: str) -> SubscriptionView:
    """Ask Stripe to stop at the end of the paid period; access lasts until then."""
    async with rt.db.connection() as conn:
        row = await subscriptions.get_pair(conn, fan_id, creator_id)
    if row is None or row.stripe_subscription_id is None or not row.active:
        raise NotFound("you do not subscribe to this creator")
    if row.cancel_at_period_end:
        return SubscriptionView.of(row)
    await rt.stripe.cancel_at_period_end(row.stripe_subscription_id)
    async with rt.db.transaction() as conn:
        row = await subscriptions.set_cancel_at_period_end(conn, int(row.id))
    return SubscriptionView.of(row)


async def list_mine(rt: Runtime, fan_id: str) -> SubscriptionList:
    """Every subscription the caller has had, newest first."""
    async with rt.db.connection() as conn:
        rows = await subscriptions.list_for_fan(conn, fan_id)
    return SubscriptionList(items=[SubscriptionView.of(row) for row in rows])


async def subscriber_rooms(rt: Runtime, fan_id: str) -> list[str]:
    """The subscriber rooms a fan's sockets belong in right now."""
    async with rt.db.connection() as conn:
        creators = await subscriptions.active_creator_ids(conn, fan_id)
    return [subscribers_room(creator_id) for creator_id in creators]
