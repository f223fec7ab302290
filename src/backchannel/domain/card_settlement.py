"""What Stripe webhooks do to card purchases: settle a payment once (refunds and disputes are
`card_reversals`, which this applies to a payment they were reported for before it arrived).

It runs inside the webhook's transaction (the event id is recorded in it too) and queue their
live events on its `Deliveries`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backchannel.domain.card_reversals import reconcile
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import split_sale
from backchannel.domain.sales import grant, parse_id, sale_effects, sale_legs, tell_balances
from backchannel.errors import NotFound
from backchannel.persistence import ledger, purchases, reversals

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


async def complete_card_payment(
    rt: Runtime,
    fx: Deliveries,
    *,
    purchase_id: str | None,
    payment_intent_id: str | None,
    amount_paid: int | None,
    currency: str | None,
) -> str:
    """A card payment succeeded: unlock or credit, once. Returns the outcome to record."""
    conn = fx.conn
    try:
        pk = parse_id(purchase_id, "purchase")
    except NotFound:
        return "unknown_purchase"
    # Before the purchase's row lock, in the same order as refunds and disputes take them.
    await reversals.lock_payment(conn, payment_intent_id)
    found = await purchases.lock(conn, pk)
    if found is None:
        return "unknown_purchase"
    if found.status != "pending":
        return f"purchase_already_{found.status}"
    paid = found.amount_cents if amount_paid is None else amount_paid
    if (currency or found.currency).lower() != found.currency or paid != found.amount_cents:
        log.warning("payment for purchase %s does not match its price", found.id)
        return "amount_mismatch"
    split = split_sale(found.amount_cents, rt.settings.platform_fee_percent)
    # Refunds or disputes reported before this success event: a payment already wholly taken
    # back unlocks nothing (its sale and its reversal are both still written, below).
    early = await reversals.targets(conn, pk, payment_intent_id)
    wholly_reversed = early.refunded_cents + early.withheld_cents >= found.amount_cents
    granted = True if wholly_reversed else await grant(conn, found)
    if granted:
        completed = await purchases.set_status(
            conn, pk, "completed", fee_cents=split.fee_cents, payment_intent_id=payment_intent_id
        )
        legs = sale_legs(ledger.STRIPE_CLEARING, completed, split)
        outcome = "completed"
    else:
        # Paid by card for something the buyer meanwhile got another way: the money is theirs.
        completed = await purchases.set_status(
            conn, pk, "credited", payment_intent_id=payment_intent_id
        )
        # A wallet holds one currency; money in another waits for an operator's refund.
        holder = (
            ledger.wallet_account(found.buyer_id)
            if found.currency == ledger.WALLET_CURRENCY
            else ledger.REFUNDS_DUE
        )
        legs = [(ledger.STRIPE_CLEARING, -found.amount_cents), (holder, found.amount_cents)]
        outcome = "credited_to_wallet" if holder != ledger.REFUNDS_DUE else "refund_due"
    moved = await ledger.post(
        conn, legs, currency=found.currency, memo=f"card {found.kind}", purchase_id=pk
    )
    assert moved is not None
    if granted and not wholly_reversed:
        await sale_effects(rt, fx, completed, moved.wallets)
    else:
        await tell_balances(fx, moved.wallets)
    if early.refunded_cents or early.withheld_cents or early.dispute_stage:
        reconciled = await reconcile(rt, fx, completed, "reversal")
        return "reversed_before_payment" if wholly_reversed else f"{outcome}_{reconciled}"
    return outcome
