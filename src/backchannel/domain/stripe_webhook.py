"""`POST /webhooks/stripe`: verify, record the event id, apply its effect, all at once.

The signature is checked by the `stripe` package on the raw bytes. The event id is recorded
in the same transaction as its effect, so a replay or a concurrent duplicate does nothing.
Only our metadata (`bc_*`, PROTOCOL.md "Stripe objects") says what a payment is for; an event
naming nothing we know is recorded and answered 200, never retried by Stripe for days.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import stripe
from pydantic import BaseModel

from backchannel import inputs
from backchannel.domain import card_reversals, card_settlement, delivery, payouts
from backchannel.domain.card_reversals import RefundSeen
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import split_sale
from backchannel.domain.subscriptions import StripeState, apply_stripe_state
from backchannel.errors import Invalid, Unavailable
from backchannel.persistence import (
    ledger,
    purchases,
    reversals,
    stripe_events,
    subscriptions,
    users,
)

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Handler = Callable[["Runtime", Deliveries, Obj, Obj], Awaitable[str]]


class WebhookAnswer(BaseModel):
    """What the endpoint answers Stripe."""

    received: bool = True
    duplicate: bool = False
    outcome: str


def _ts(value: Any) -> datetime | None:
    """A Unix time as a datetime; None if it is not one a datetime (or Postgres) can hold."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _id(value: Any) -> str | None:
    """An expandable field: an id string or an object with an id."""
    if isinstance(value, dict):
        return _str(value.get("id"))
    return _str(value)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    # Postgres text cannot hold NUL: such a value names nothing we know.
    return value if isinstance(value, str) and value and "\x00" not in value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Stripe amounts are at most 8 digits in any currency; anything outside this is not an amount
# and must not reach a bigint column.
_MAX_CENTS = 10**12


def _cents(value: Any) -> int | None:
    """A non-negative amount in minor units, or None."""
    number = _int(value)
    return number if number is not None and 0 <= number <= _MAX_CENTS else None


def _first(items: Any) -> Obj:
    data = _dict(items).get("data")
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


def verify(rt: Runtime, raw: bytes, signature: str | None) -> Obj:
    """The event, if the raw body is signed with our endpoint secret; `invalid` otherwise."""
    secret = rt.settings.stripe_webhook_secret
    if secret is None:
        raise Unavailable("Stripe webhooks are not configured (BACKCHANNEL_STRIPE_WEBHOOK_SECRET)")
    if not signature:
        raise Invalid("missing Stripe-Signature header")
    try:
        payload = raw.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            payload,
            signature,
            secret.get_secret_value(),
            rt.settings.stripe_webhook_tolerance_seconds,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid("invalid Stripe signature") from exc
    event = inputs.loads(payload)  # bounded depth, storable text, 64-bit integers
    if (
        not isinstance(event, dict)
        or not _str(event.get("id"))
        or not _str(event.get("type"))
        or _ts(event.get("created")) is None
        or not isinstance(_dict(event.get("data")).get("object"), dict)
    ):
        raise Invalid("not a Stripe event")
    return event


async def receive(rt: Runtime, raw: bytes, signature: str | None) -> WebhookAnswer:
    """Verify and apply one event, exactly once; live events go out after commit."""
    event = verify(rt, raw, signature)
    event_id, event_type = str(event["id"]), str(event["type"])
    created = _ts(event["created"])
    assert created is not None
    obj: Obj = event["data"]["object"]
    async with rt.db.transaction() as conn:
        if not await stripe_events.claim(conn, event_id, event_type, created):
            label = event_type if event_type in HANDLERS else "other"
            rt.metrics.stripe_events.labels(label, "duplicate").inc()
            return WebhookAnswer(duplicate=True, outcome="duplicate")
        fx = Deliveries(conn)
        handler = HANDLERS.get(event_type)
        outcome = await handler(rt, fx, event, obj) if handler else "ignored"
        await stripe_events.set_outcome(conn, event_id, outcome)
    log.info("stripe event %s %s: %s", event_type, event_id, outcome)
    label = event_type if event_type in HANDLERS else "other"
    rt.metrics.stripe_events.labels(label, outcome).inc()
    # Answer Stripe at once; sockets are told in the background (and by the outbox task).
    delivery.finish_soon(rt, fx)
    return WebhookAnswer(outcome=outcome)


# -- one-off payments ---------------------------------------------------------------------


async def _session_completed(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    metadata = _dict(obj.get("metadata"))
    if obj.get("mode") == "subscription":
        return await _session_subscription(rt, fx, event, obj, metadata)
    if obj.get("payment_status") != "paid":
        return "unpaid_session"
    return await card_settlement.complete_card_payment(
        rt,
        fx,
        purchase_id=_str(metadata.get("bc_purchase_id")),
        payment_intent_id=_id(obj.get("payment_intent")),
        amount_paid=_int(obj.get("amount_total")),
        currency=_str(obj.get("currency")),
    )


async def _session_expired(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    """An abandoned Checkout: its pending purchase will never be paid."""
    purchase_id = _str(_dict(obj.get("metadata")).get("bc_purchase_id"))
    if obj.get("mode") != "payment" or purchase_id is None or not purchase_id.isdigit():
        return "ignored"
    found = await purchases.lock(fx.conn, int(purchase_id))
    if found is None:
        return "unknown_purchase"
    if found.status != "pending":
        return f"purchase_already_{found.status}"
    await purchases.set_status(fx.conn, found.pk, "failed")
    return "purchase_expired"


async def _payment_intent_succeeded(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    metadata = _dict(obj.get("metadata"))
    if not _str(metadata.get("bc_purchase_id")):
        return "not_a_purchase"
    return await card_settlement.complete_card_payment(
        rt,
        fx,
        purchase_id=_str(metadata.get("bc_purchase_id")),
        payment_intent_id=_id(obj.get("id")),
        amount_paid=_int(obj.get("amount_received")),
        currency=_str(obj.get("currency")),
    )


def _refunds_seen(items: Any) -> list[RefundSeen]:
    """The Refund objects a Charge lists (`refunds.data`), when it lists them."""
    data = _dict(items).get("data")
    seen = []
    for item in data if isinstance(data, list) else []:
        refund = _dict(item)
        refund_id, amount = _str(refund.get("id")), _cents(refund.get("amount"))
        if refund_id and amount is not None:
            failed = refund.get("status") in ("failed", "canceled")
            seen.append(RefundSeen(refund_id, amount, failed))
    return seen


async def _charge_refunded(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    """A Charge's running total of refunds (and, when listed, its Refund objects)."""
    return await card_reversals.refund_reported(
        rt,
        fx,
        payment_intent_id=_id(obj.get("payment_intent")),
        purchase_id=_str(_dict(obj.get("metadata")).get("bc_purchase_id")),
        charge_id=_str(obj.get("id")),
        amount_refunded=_cents(obj.get("amount_refunded")),
        refunds=_refunds_seen(obj.get("refunds")),
    )


async def _refund_changed(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    """`refund.created/updated`, `charge.refund.updated`: one Refund, maybe failed or canceled."""
    seen = _refunds_seen({"data": [obj]})
    if not seen:
        return "missing_refund"
    return await card_reversals.refund_reported(
        rt,
        fx,
        payment_intent_id=_id(obj.get("payment_intent")),
        purchase_id=_str(_dict(obj.get("metadata")).get("bc_purchase_id")),
        charge_id=None,
        amount_refunded=None,
        refunds=seen,
    )


def _dispute_handler(stage: int | None) -> Handler:
    """A dispute event at a fixed stage, or (`None`) `closed`, whose stage is its status."""

    async def handle(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
        reached = stage
        if reached is None:
            closed = obj.get("status")
            if closed == "lost":
                reached = reversals.LOST
            elif closed in ("won", "warning_closed"):
                reached = reversals.REINSTATED
            else:
                return "dispute_status_ignored"
        return await card_reversals.dispute_reported(
            rt,
            fx,
            dispute_id=_str(obj.get("id")),
            payment_intent_id=_id(obj.get("payment_intent")),
            purchase_id=_str(_dict(obj.get("metadata")).get("bc_purchase_id")),
            amount_cents=_cents(obj.get("amount")),
            stage=reached,
        )

    return handle


# -- subscriptions --------------------------------------------------------------------------


async def _session_subscription(
    rt: Runtime, fx: Deliveries, event: Obj, obj: Obj, metadata: Obj
) -> str:
    stripe_id = _id(obj.get("subscription"))
    fan = _str(metadata.get("bc_user_id")) or _str(obj.get("client_reference_id"))
    creator = _str(metadata.get("bc_creator_id"))
    if not (stripe_id and fan and creator):
        return "missing_metadata"
    paid = obj.get("payment_status") in ("paid", "no_payment_required")
    state = StripeState(
        stripe_subscription_id=stripe_id,
        fan_id=fan,
        creator_id=creator,
        status="active" if paid else "incomplete",
        version=_ts(event["created"]) or datetime.now(UTC),
    )
    return await apply_stripe_state(rt, fx, state)


async def _subscription_changed(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    stripe_id = _id(obj.get("id"))
    metadata = _dict(obj.get("metadata"))
    fan, creator = _str(metadata.get("bc_user_id")), _str(metadata.get("bc_creator_id"))
    if stripe_id and not (fan and creator):
        known = await subscriptions.get_by_stripe_id(fx.conn, stripe_id)
        if known is not None:
            fan, creator = known.fan_id, known.creator_id
    status = _str(obj.get("status"))
    if not (stripe_id and fan and creator and status):
        return "missing_metadata"
    item = _first(obj.get("items"))
    # Current API versions keep the period on each item; older ones on the subscription.
    period_end = _ts(item.get("current_period_end")) or _ts(obj.get("current_period_end"))
    price = _int(_dict(item.get("price")).get("unit_amount"))
    cancel = obj.get("cancel_at_period_end")
    state = StripeState(
        stripe_subscription_id=stripe_id,
        fan_id=fan,
        creator_id=creator,
        status=status,
        version=_ts(event["created"]) or datetime.now(UTC),
        current_period_end=_paid_period_end(status, period_end),
        cancel_at_period_end=cancel if isinstance(cancel, bool) else None,
        price_cents=price,
    )
    return await apply_stripe_state(rt, fx, state)


# Stripe starts the next period whether or not its invoice is paid; until it is, the period
# we show (and grant access by) stays the last one paid for.
UNPAID = frozenset({"past_due", "unpaid", "incomplete", "incomplete_expired"})


def _paid_period_end(status: str, period_end: datetime | None) -> datetime | None:
    """The period end to record: None (keep the recorded one) while the period is unpaid."""
    return None if status in UNPAID else period_end


def _invoice_subscription(obj: Obj) -> tuple[str | None, Obj]:
    details = _dict(_dict(obj.get("parent")).get("subscription_details"))
    stripe_id = _id(details.get("subscription")) or _id(obj.get("subscription"))
    metadata = _dict(details.get("metadata")) or _dict(
        _dict(obj.get("subscription_details")).get("metadata")
    )
    return stripe_id, metadata


async def _invoice(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj, status: str) -> str:
    stripe_id, metadata = _invoice_subscription(obj)
    if stripe_id is None:
        return "not_a_subscription_invoice"
    fan, creator = _str(metadata.get("bc_user_id")), _str(metadata.get("bc_creator_id"))
    if not (fan and creator):
        known = await subscriptions.get_by_stripe_id(fx.conn, stripe_id)
        if known is None:
            return "missing_metadata"
        fan, creator = known.fan_id, known.creator_id
    line = _first(obj.get("lines"))
    state = StripeState(
        stripe_subscription_id=stripe_id,
        fan_id=fan,
        creator_id=creator,
        status=status,
        version=_ts(event["created"]) or datetime.now(UTC),
        current_period_end=_paid_period_end(status, _ts(_dict(line.get("period")).get("end"))),
    )
    outcome = await apply_stripe_state(rt, fx, state)
    if outcome == "unknown_user":
        return outcome
    amount = _int(obj.get("amount_paid")) or 0
    invoice_id = _id(obj.get("id"))
    if status == "active" and amount > 0 and invoice_id:
        await _record_invoice_payment(rt, fx, fan, creator, amount, obj, invoice_id)
    return outcome


async def _record_invoice_payment(
    rt: Runtime, fx: Deliveries, fan: str, creator: str, amount: int, obj: Obj, invoice_id: str
) -> None:
    """A subscription payment is a sale like any other: split it in the ledger, once."""
    if not await users.user_exists(fx.conn, creator):
        return
    currency = _str(obj.get("currency")) or ledger.WALLET_CURRENCY
    split = split_sale(amount, rt.settings.platform_fee_percent)
    recorded = await purchases.insert_invoice_payment(
        fx.conn,
        buyer_id=fan,
        creator_id=creator,
        amount_cents=amount,
        fee_cents=split.fee_cents,
        currency=currency,
        invoice_id=invoice_id,
        payment_intent_id=_invoice_payment_intent(obj),
    )
    if recorded is None:
        return
    await ledger.post(
        fx.conn,
        [
            (ledger.STRIPE_CLEARING, -amount),
            (ledger.earnings_account(creator), split.creator_cents),
            (ledger.PLATFORM_FEE, split.fee_cents),
        ],
        currency=currency,
        memo="subscription invoice",
        purchase_id=recorded.pk,
    )


def _invoice_payment_intent(obj: Obj) -> str | None:
    """The PaymentIntent that paid an invoice: `payments` in current API versions."""
    payment = _dict(_first(obj.get("payments")).get("payment"))
    return _id(payment.get("payment_intent")) or _id(obj.get("payment_intent"))


async def _invoice_paid(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    return await _invoice(rt, fx, event, obj, "active")


async def _invoice_failed(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    return await _invoice(rt, fx, event, obj, "past_due")


# -- Connect payouts -------------------------------------------------------------------------


async def _account_updated(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    enabled = obj.get("payouts_enabled")
    return await payouts.account_updated(
        fx.conn, _str(obj.get("id")), enabled if isinstance(enabled, bool) else None
    )


async def _transfer_reversed(rt: Runtime, fx: Deliveries, event: Obj, obj: Obj) -> str:
    return await payouts.transfer_reversed(
        fx.conn,
        _str(obj.get("id")),
        _str(_dict(obj.get("metadata")).get("bc_payout_id")),
        _cents(obj.get("amount_reversed")),
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _session_completed,
    "checkout.session.expired": _session_expired,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund_changed,
    "refund.created": _refund_changed,
    "refund.updated": _refund_changed,
    "refund.failed": _refund_changed,
    "charge.dispute.created": _dispute_handler(reversals.WITHHELD),
    "charge.dispute.funds_withdrawn": _dispute_handler(reversals.WITHHELD),
    "charge.dispute.funds_reinstated": _dispute_handler(reversals.REINSTATED),
    "charge.dispute.closed": _dispute_handler(None),
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "account.updated": _account_updated,
    "transfer.reversed": _transfer_reversed,
}
