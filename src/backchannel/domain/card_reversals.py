"""Refunds and disputes: record what Stripe reported, then apply only the difference.

Stripe reports running totals (`amount_refunded`) and may deliver events late, twice or out
of order. Every report is recorded (`persistence.reversals`) and `reconcile` moves the
purchase from what its ledger already reflects (`refunded_cents`, `disputed_cents`) to what
the recorded reports add up to, so the end state depends only on the set of events.

The rule, on cumulative totals (docs/protocol.md "Refunds, disputes and the hold"):
reversed = min(amount, refunded + withheld); the fee gives back `floor(fee * reversed /
amount)`, the creator the rest. The unlock is revoked only when reversed == amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backchannel.domain import notices, webhook_events
from backchannel.domain.delivery import Deliveries
from backchannel.domain.event_models import (
    ContentLocked,
    ContentUnlocked,
    PpvLocked,
    PpvUnlocked,
    PurchaseUpdated,
    checked,
)
from backchannel.domain.fees import Split, split_reversal
from backchannel.domain.sales import grant, message_view, parse_id, tell_balances
from backchannel.errors import NotFound
from backchannel.persistence import ledger, purchases, reversals, unlocks
from backchannel.persistence.database import Connection
from backchannel.persistence.purchases import DisputeStatus, Purchase, Status
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

SETTLED = ("completed", "refunded", "disputed", "credited")
_DISPUTE_STATUS: dict[int, DisputeStatus] = {
    reversals.WITHHELD: "withheld",
    reversals.REINSTATED: "reinstated",
    reversals.LOST: "lost",
}


@dataclass(frozen=True)
class RefundSeen:
    """One Refund object as an event showed it."""

    refund_id: str
    amount_cents: int
    failed: bool


async def find_payment(
    conn: Connection, payment_intent_id: str | None, purchase_id: str | None
) -> Purchase | None:
    """The purchase a PaymentIntent (or our metadata) names, row-locked."""
    found: Purchase | None = None
    if payment_intent_id:
        found = await purchases.lock_by_payment_intent(conn, payment_intent_id)
    if found is None and purchase_id:
        try:
            found = await purchases.lock(conn, parse_id(purchase_id, "purchase"))
        except NotFound:
            found = None
    return found


async def refund_reported(
    rt: Runtime,
    fx: Deliveries,
    *,
    payment_intent_id: str | None,
    purchase_id: str | None,
    charge_id: str | None,
    amount_refunded: int | None,
    refunds: list[RefundSeen],
) -> str:
    """`charge.refunded` (a running total and Refund objects) or a Refund's own update."""
    await reversals.lock_payment(fx.conn, payment_intent_id)
    found = await find_payment(fx.conn, payment_intent_id, purchase_id)
    if found is None and not payment_intent_id:
        return "unknown_payment"
    pk = found.pk if found else None
    pi = payment_intent_id or (found.stripe_payment_intent_id if found else None)
    if charge_id and amount_refunded is not None:
        await reversals.record_charge_total(
            fx.conn,
            charge_id,
            payment_intent_id=pi,
            purchase_id=pk,
            amount_refunded=amount_refunded,
        )
    for refund in refunds:
        await reversals.record_refund(
            fx.conn,
            refund.refund_id,
            payment_intent_id=pi,
            purchase_id=pk,
            amount_cents=refund.amount_cents,
            failed=refund.failed,
        )
    if found is None or found.status == "pending":
        return "reversal_recorded_before_payment"
    return await reconcile(rt, fx, found, "refund")


async def dispute_reported(
    rt: Runtime,
    fx: Deliveries,
    *,
    dispute_id: str | None,
    payment_intent_id: str | None,
    purchase_id: str | None,
    amount_cents: int | None,
    stage: int,
) -> str:
    """A dispute event: withheld, reinstated (won) or lost, at the furthest stage seen."""
    if dispute_id is None:
        return "missing_dispute_id"
    await reversals.lock_payment(fx.conn, payment_intent_id)
    found = await find_payment(fx.conn, payment_intent_id, purchase_id)
    if found is None and not payment_intent_id:
        return "unknown_payment"
    amount = amount_cents if amount_cents is not None else (found.amount_cents if found else 0)
    await reversals.record_dispute(
        fx.conn,
        dispute_id,
        payment_intent_id=payment_intent_id or (found.stripe_payment_intent_id if found else None),
        purchase_id=found.pk if found else None,
        amount_cents=max(amount, 0),
        stage=stage,
    )
    if found is None or found.status == "pending":
        return "reversal_recorded_before_payment"
    return await reconcile(rt, fx, found, "dispute")


def _legs(found: Purchase, before: int, after: int, credited: bool) -> list[tuple[str, int]]:
    """The ledger difference between having reversed `before` and `after` of a purchase."""
    delta = after - before
    if credited or found.kind == "wallet_topup":
        holder = (
            ledger.wallet_account(found.buyer_id)
            if found.currency == ledger.WALLET_CURRENCY
            else ledger.REFUNDS_DUE
        )
        return [(holder, -delta), (ledger.STRIPE_CLEARING, delta)]
    assert found.creator_id is not None
    sale = Split(found.amount_cents, found.fee_cents, found.amount_cents - found.fee_cents)
    was, now = split_reversal(sale, before), split_reversal(sale, after)
    return [
        (ledger.STRIPE_CLEARING, now.amount_cents - was.amount_cents),
        (ledger.earnings_account(found.creator_id), was.creator_cents - now.creator_cents),
        (ledger.PLATFORM_FEE, was.fee_cents - now.fee_cents),
    ]


async def reconcile(rt: Runtime, fx: Deliveries, found: Purchase, reason: str) -> str:
    """Bring a settled purchase's ledger, status and unlock to what Stripe has reported."""
    if found.status not in SETTLED:
        return f"purchase_already_{found.status}"
    conn = fx.conn
    seen = await reversals.targets(conn, found.pk, found.stripe_payment_intent_id)
    amount = found.amount_cents
    refunded = min(seen.refunded_cents, amount)
    disputed = min(seen.withheld_cents, amount - refunded)
    before, after = found.refunded_cents + found.disputed_cents, refunded + disputed
    dispute_status = _DISPUTE_STATUS.get(seen.dispute_stage or 0)
    status: Status = found.status
    if found.status != "credited":
        whole: Status = "refunded" if refunded == amount else "disputed"
        status = "completed" if after < amount else whole
    if (
        found.status in ("refunded", "disputed")
        and status == "completed"
        and found.kind in ("ppv_message", "content")
        and found.target_id is not None
        and await purchases.owns(conn, found.buyer_id, found.kind, found.target_id)
    ):
        # Reinstated after the buyer bought it again: they cannot own it twice, so what comes
        # back is theirs, in the wallet (as a payment for something already owned).
        status = "credited"
    if (before, status, dispute_status, found.refunded_cents) == (
        after,
        found.status,
        found.dispute_status,
        refunded,
    ):
        return f"{reason}_already_applied"
    moved: dict[str, ledger.Wallet] = {}
    if after != before:
        movement = await ledger.post(
            conn,
            _legs(found, before, after, "credited" in (found.status, status)),
            currency=found.currency,
            memo=f"{reason} {found.kind}" if after > before else f"reinstated {found.kind}",
            purchase_id=found.pk,
            allow_overdraft=True,
        )
        assert movement is not None
        moved = movement.wallets
    updated = await purchases.set_reversed(
        conn,
        found.pk,
        status=status,
        refunded_cents=refunded,
        disputed_cents=disputed,
        dispute_status=dispute_status,
    )
    if refunded > found.refunded_cents:
        await webhook_events.record_fx(
            rt,
            fx,
            [
                webhook_events.event(
                    webhook_events.PURCHASE_REFUNDED,
                    {
                        **webhook_events.purchase_data(updated),
                        "newly_refunded_cents": refunded - found.refunded_cents,
                    },
                )
            ],
        )
    if found.status == "completed" and status != "completed":
        await _revoke(rt, fx, updated, reason)
    elif found.status in ("refunded", "disputed") and status == "completed":
        await _restore(rt, fx, updated)
    if after != before:
        await _tell_updated(fx, updated, before, after)
    await tell_balances(fx, moved)
    if after > before:
        return f"{reason}_reversed"
    return f"{reason}_reinstated" if after < before else f"{reason}_recorded"


async def _revoke(rt: Runtime, fx: Deliveries, found: Purchase, reason: str) -> None:
    """Fully reversed: the buyer loses the unlock, live (only if they had it)."""
    conn = fx.conn
    if found.kind == "ppv_message" and found.target_id:
        if not await unlocks.relock_message(conn, int(found.target_id), found.buyer_id):
            return
        message = await unlocks.message_for_viewer(conn, int(found.target_id), found.buyer_id)
        if message is not None and message.is_member:
            await fx.to_user(
                Namespace.PPV,
                found.buyer_id,
                "ppv:locked",
                checked(
                    PpvLocked,
                    {
                        "message_id": message.id,
                        "conversation_id": message.conversation_id,
                        "reason": reason,
                        "message": await message_view(rt, conn, message.id, found.buyer_id),
                    },
                ),
            )
    if (
        found.kind == "content"
        and found.target_id
        and await unlocks.relock_content(conn, int(found.target_id), found.buyer_id)
    ):
        await fx.to_user(
            Namespace.PPV,
            found.buyer_id,
            "content:locked",
            checked(ContentLocked, {"content_id": found.target_id, "reason": reason}),
        )


async def _restore(rt: Runtime, fx: Deliveries, found: Purchase) -> None:
    """Reinstated (a dispute won, a refund failed): the unlock comes back, live."""
    conn = fx.conn
    if not await grant(conn, found):
        return
    if found.kind == "ppv_message" and found.target_id:
        message = await unlocks.message_for_viewer(conn, int(found.target_id), found.buyer_id)
        if message is not None and message.is_member:
            await fx.to_user(
                Namespace.PPV,
                found.buyer_id,
                "ppv:unlocked",
                checked(
                    PpvUnlocked,
                    {
                        "message_id": message.id,
                        "conversation_id": message.conversation_id,
                        "message": await message_view(rt, conn, message.id, found.buyer_id),
                    },
                ),
            )
    if found.kind == "content" and found.target_id:
        await fx.to_user(
            Namespace.PPV,
            found.buyer_id,
            "content:unlocked",
            checked(ContentUnlocked, {"content_id": found.target_id}),
        )


async def _tell_updated(fx: Deliveries, found: Purchase, before: int, after: int) -> None:
    """`ppv:purchase_updated` to the buyer and the creator; a stored notice to the creator."""
    event: dict[str, Any] = {
        "purchase_id": found.id,
        "kind": found.kind,
        "amount_cents": found.amount_cents,
        "refunded_cents": found.refunded_cents,
        "disputed_cents": found.disputed_cents,
        "currency": found.currency,
        "status": found.status,
    }
    event = checked(PurchaseUpdated, event)
    await fx.to_user(Namespace.PPV, found.buyer_id, "ppv:purchase_updated", event)
    if found.creator_id is None or found.kind == "wallet_topup":
        return
    await fx.to_user(Namespace.PPV, found.creator_id, "ppv:purchase_updated", event)
    money = notices.money
    if after > before:
        body = (
            f"{money(after - before, found.currency)} of a "
            f"{money(found.amount_cents, found.currency)} sale was taken back"
        )
    else:
        body = f"{money(before - after, found.currency)} of a sale was given back to you"
    await notices.notify(
        fx.conn,
        fx,
        found.creator_id,
        "purchase.updated",
        "A sale changed",
        event,
        body=body,
        dedupe_key=f"purchase:{found.id}:reversed:{after}",
    )
