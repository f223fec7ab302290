"""What Stripe webhooks do to card purchases: settle a payment once, or reverse it.

Both run inside the webhook's transaction (the event id is recorded in it too) and queue their
live events on its `Deliveries`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import Split, split_reversal, split_sale
from backchannel.domain.sales import (
    grant,
    message_view,
    parse_id,
    sale_effects,
    sale_legs,
    tell_balances,
)
from backchannel.errors import NotFound
from backchannel.persistence import ledger, purchases, stripe_events, unlocks
from backchannel.persistence.purchases import Purchase
from backchannel.rooms.names import Namespace

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
    found = await purchases.lock(conn, pk)
    if found is None:
        return "unknown_purchase"
    if found.status != "pending":
        return f"purchase_already_{found.status}"
    if payment_intent_id and await stripe_events.reversal(conn, payment_intent_id):
        await purchases.set_status(conn, pk, "refunded", payment_intent_id=payment_intent_id)
        return "reversed_before_payment"
    paid = found.amount_cents if amount_paid is None else amount_paid
    if (currency or found.currency).lower() != found.currency or paid != found.amount_cents:
        log.warning("payment for purchase %s does not match its price", found.id)
        return "amount_mismatch"
    split = split_sale(found.amount_cents, rt.settings.platform_fee_percent)
    granted = await grant(conn, found)
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
    balances = await ledger.post(
        conn, legs, currency=found.currency, memo=f"card {found.kind}", purchase_id=pk
    )
    assert balances is not None
    if granted:
        await sale_effects(rt, fx, completed, balances)
    else:
        await tell_balances(fx, balances)
    return outcome


async def reverse_card_payment(
    rt: Runtime,
    fx: Deliveries,
    *,
    event_id: str,
    payment_intent_id: str | None,
    purchase_id: str | None,
    reversed_cents: int | None,
    reason: str,
) -> str:
    """A refund or dispute: take the unlock back and reverse the ledger, once."""
    conn = fx.conn
    found: Purchase | None = None
    if payment_intent_id:
        found = await purchases.lock_by_payment_intent(conn, payment_intent_id)
    if found is None and purchase_id:
        try:
            found = await purchases.lock(conn, parse_id(purchase_id, "purchase"))
        except NotFound:
            found = None
    if found is None or found.status == "pending":
        if payment_intent_id:
            await stripe_events.add_reversal(conn, payment_intent_id, event_id, reason)
        if found is not None:
            await purchases.set_status(
                conn, found.pk, "refunded", payment_intent_id=payment_intent_id
            )
        return "reversal_recorded_before_payment"
    if found.status not in ("completed", "credited"):
        return f"purchase_already_{found.status}"
    amount = (
        found.amount_cents if reversed_cents is None else min(reversed_cents, found.amount_cents)
    )
    balances: dict[str, int] | None
    if found.status == "credited" or found.kind == "wallet_topup":
        holder = (
            ledger.wallet_account(found.buyer_id)
            if found.currency == ledger.WALLET_CURRENCY
            else ledger.REFUNDS_DUE
        )
        balances = await ledger.post(
            conn,
            [(holder, -amount), (ledger.STRIPE_CLEARING, amount)],
            currency=found.currency,
            memo=f"{reason} {found.kind}",
            purchase_id=found.pk,
            allow_overdraft=True,
        )
    else:
        assert found.creator_id is not None
        back = split_reversal(
            Split(found.amount_cents, found.fee_cents, found.amount_cents - found.fee_cents), amount
        )
        balances = await ledger.post(
            conn,
            [
                (ledger.STRIPE_CLEARING, back.amount_cents),
                (ledger.earnings_account(found.creator_id), -back.creator_cents),
                (ledger.PLATFORM_FEE, -back.fee_cents),
            ],
            currency=found.currency,
            memo=f"{reason} {found.kind}",
            purchase_id=found.pk,
            allow_overdraft=True,
        )
    assert balances is not None
    await purchases.set_status(conn, found.pk, "refunded")
    if found.status == "completed" and found.kind == "ppv_message" and found.target_id:
        await unlocks.relock_message(conn, int(found.target_id), found.buyer_id)
        message = await unlocks.message_for_viewer(conn, int(found.target_id), found.buyer_id)
        if message is not None and message.is_member:
            await fx.to_user(
                Namespace.PPV,
                found.buyer_id,
                "ppv:locked",
                {
                    "message_id": message.id,
                    "conversation_id": message.conversation_id,
                    "reason": reason,
                    "message": await message_view(rt, conn, message.id, found.buyer_id),
                },
            )
    if found.status == "completed" and found.kind == "content" and found.target_id:
        await unlocks.relock_content(conn, int(found.target_id), found.buyer_id)
        await fx.to_user(
            Namespace.PPV,
            found.buyer_id,
            "content:locked",
            {"content_id": found.target_id, "reason": reason},
        )
    await tell_balances(fx, balances)
    return f"{reason}_reversed"
