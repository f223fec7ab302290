"""Buying with the wallet: `POST /purchases` and `ppv:unlock`.

A wallet purchase writes its ledger movement, its effect (an unlock, a credit) and the outbox
rows that tell sockets in one transaction; sockets hear after commit. A card purchase starts a
Stripe Checkout (`card_checkout`) and is settled by its webhook (`card_settlement`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backchannel.domain import delivery
from backchannel.domain.card_checkout import start_card_payment
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import split_sale
from backchannel.domain.payment_models import (
    MIN_CARD_CENTS,
    CardCheckout,
    PurchaseRequest,
    PurchaseView,
    UnlockRequest,
)
from backchannel.domain.sales import Target, grant, resolve_target, sale_effects, sale_legs
from backchannel.errors import Conflict, Invalid, PaymentRequired
from backchannel.persistence import ledger, purchases
from backchannel.persistence.purchases import Purchase

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


def card_details(rt: Runtime, target: Target, balance_cents: int | None = None) -> dict[str, Any]:
    """`payment_required` details: the price, the balance, and how to pay instead."""
    details: dict[str, Any] = {
        "price_cents": target.amount_cents,
        "currency": target.currency,
        "pay_with": ["card"] if rt.stripe.configured else [],
        "card": {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {"kind": target.kind, "target_id": target.target_id, "pay_with": "card"},
            "available": rt.stripe.configured,
        },
    }
    if target.kind == "tip":
        details["card"]["body"]["amount_cents"] = target.amount_cents
    if balance_cents is not None:
        details["balance_cents"] = balance_cents
        details["wallet_topup"] = {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {
                "kind": "wallet_topup",
                "amount_cents": max(target.amount_cents - balance_cents, MIN_CARD_CENTS),
                "pay_with": "card",
            },
        }
    return details


async def pay_from_wallet(
    rt: Runtime, buyer_id: str, request: PurchaseRequest
) -> tuple[Purchase, dict[str, Any] | None]:
    """Buy, unlock and tell, in one transaction; no overdraft however many run at once."""
    if request.kind == "wallet_topup":
        raise Invalid(
            "a wallet is topped up by card", [{"field": "pay_with", "message": "use card"}]
        )
    async with rt.db.transaction() as conn:
        target = await resolve_target(conn, buyer_id, request)
        if target.currency != ledger.WALLET_CURRENCY:
            raise PaymentRequired(
                f"the wallet holds {ledger.WALLET_CURRENCY}; pay for this by card",
                card_details(rt, target),
            )
        split = split_sale(target.amount_cents, rt.settings.platform_fee_percent)
        purchase = await purchases.insert(
            conn,
            buyer_id=buyer_id,
            kind=target.kind,
            target_id=target.target_id,
            creator_id=target.creator_id,
            amount_cents=split.amount_cents,
            fee_cents=split.fee_cents,
            currency=target.currency,
            pay_with="wallet",
            status="completed",
        )
        if not await grant(conn, purchase):
            raise Conflict("you already unlocked this")
        moved = await ledger.post(
            conn,
            sale_legs(ledger.wallet_account(buyer_id), purchase, split),
            currency=target.currency,
            memo=f"{target.kind} {target.target_id or ''}".strip(),
            purchase_id=purchase.pk,
        )
        if moved is None:
            wallet = await ledger.get_wallet(conn, buyer_id)
            raise PaymentRequired(
                f"your wallet holds {wallet.balance_cents} cents; this costs {target.amount_cents}",
                card_details(rt, target, wallet.balance_cents),
            )
        fx = Deliveries(conn)
        whole = await sale_effects(rt, fx, purchase, moved.wallets)
    await delivery.finish(rt, fx)
    return purchase, whole


async def unlock_message(rt: Runtime, buyer_id: str, request: UnlockRequest) -> dict[str, Any]:
    """`ppv:unlock`: pay from the wallet, return the whole message."""
    _, whole = await pay_from_wallet(
        rt,
        buyer_id,
        PurchaseRequest(kind="ppv_message", target_id=request.message_id, pay_with="wallet"),
    )
    assert whole is not None
    return whole


async def purchase(
    rt: Runtime, buyer_id: str, request: PurchaseRequest
) -> PurchaseView | CardCheckout:
    """`POST /purchases`: the completed purchase (wallet) or where to pay (card)."""
    if request.pay_with == "card":
        return await start_card_payment(rt, buyer_id, request)
    done, _ = await pay_from_wallet(rt, buyer_id, request)
    return PurchaseView.of(done)
