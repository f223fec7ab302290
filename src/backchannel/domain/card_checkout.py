"""Starting a card payment: a pending purchase and a Stripe Checkout Session for it.

The webhook settles it later (`card_settlement`); nothing is granted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backchannel.domain.payment_models import MIN_CARD_CENTS, CardCheckout, PurchaseRequest
from backchannel.domain.sales import resolve_target
from backchannel.domain.stripe_gateway import NOT_CONFIGURED
from backchannel.errors import Invalid, Unavailable
from backchannel.persistence import purchases
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


async def start_card_payment(rt: Runtime, buyer_id: str, request: PurchaseRequest) -> CardCheckout:
    """A pending purchase and a Stripe Checkout Session for it."""
    if not rt.stripe.configured:
        raise Unavailable(NOT_CONFIGURED)
    await rt.limiter.hit(f"checkout:{buyer_id}", Rate.parse(rt.settings.checkout_rate_limit))
    async with rt.db.transaction() as conn:
        target = await resolve_target(conn, buyer_id, request)
        if target.amount_cents < MIN_CARD_CENTS:
            raise Invalid(
                f"card payments start at {MIN_CARD_CENTS} cents",
                [{"field": "amount_cents", "message": f"at least {MIN_CARD_CENTS}"}],
            )
        purchase = await purchases.insert(
            conn,
            buyer_id=buyer_id,
            kind=target.kind,
            target_id=target.target_id,
            creator_id=target.creator_id,
            amount_cents=target.amount_cents,
            fee_cents=0,
            currency=target.currency,
            pay_with="card",
            status="pending",
        )
    metadata = {"bc_kind": target.kind, "bc_user_id": buyer_id, "bc_purchase_id": purchase.id}
    if target.creator_id:
        metadata["bc_creator_id"] = target.creator_id
    if target.target_id and target.kind != "tip":
        metadata["bc_target_id"] = target.target_id
    try:
        session = await rt.stripe.checkout_payment(
            amount_cents=target.amount_cents,
            currency=target.currency,
            name=target.name,
            payer_id=buyer_id,
            metadata=metadata,
            idempotency_key=f"bc-purchase-{purchase.id}",
        )
    except Exception:
        async with rt.db.transaction() as conn:
            await purchases.set_status(conn, purchase.pk, "failed")
        raise
    async with rt.db.transaction() as conn:
        await purchases.set_session(conn, purchase.pk, session.id)
    return CardCheckout(purchase_id=purchase.id, checkout_url=session.url, session_id=session.id)
