"""What Stripe reported about refunds and disputes, recorded so that any order converges.

Each Refund is kept by id (a failed or canceled refund stays failed), each Charge's largest
`amount_refunded`, each Dispute at the furthest stage seen. `targets` reads back what the
purchase's ledger should reflect; `card_settlement` applies only the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from backchannel.persistence.database import Connection

WITHHELD, REINSTATED, LOST = 1, 2, 3

LOCK_PAYMENT = "select pg_advisory_xact_lock(hashtextextended('stripe-payment:' || $1, 0))"


async def lock_payment(conn: Connection, payment_intent_id: str | None) -> None:
    """Serialise everything about one PaymentIntent for the transaction.

    A refund recorded while the payment's success event is being applied would otherwise be
    missed by both: the success would not see it yet, and the refund would find no payment.
    """
    if payment_intent_id:
        await conn.execute(LOCK_PAYMENT, payment_intent_id)


UPSERT_REFUND = """
insert into stripe_refunds (id, payment_intent_id, purchase_id, amount_cents, failed)
values ($1, $2, $3, $4, $5)
on conflict (id) do update set
    payment_intent_id = coalesce(stripe_refunds.payment_intent_id, excluded.payment_intent_id),
    purchase_id = coalesce(stripe_refunds.purchase_id, excluded.purchase_id),
    amount_cents = greatest(stripe_refunds.amount_cents, excluded.amount_cents),
    failed = stripe_refunds.failed or excluded.failed,
    updated_at = now()
"""


async def record_refund(
    conn: Connection,
    refund_id: str,
    *,
    payment_intent_id: str | None,
    purchase_id: int | None,
    amount_cents: int,
    failed: bool,
) -> None:
    """Remember one Refund object; failed (or canceled) is final."""
    await conn.execute(
        UPSERT_REFUND, refund_id, payment_intent_id, purchase_id, amount_cents, failed
    )


UPSERT_CHARGE = """
insert into stripe_charge_refunds (charge_id, payment_intent_id, purchase_id, amount_refunded)
values ($1, $2, $3, $4)
on conflict (charge_id) do update set
    payment_intent_id = coalesce(
        stripe_charge_refunds.payment_intent_id, excluded.payment_intent_id),
    purchase_id = coalesce(stripe_charge_refunds.purchase_id, excluded.purchase_id),
    amount_refunded = greatest(stripe_charge_refunds.amount_refunded, excluded.amount_refunded)
"""


async def record_charge_total(
    conn: Connection,
    charge_id: str,
    *,
    payment_intent_id: str | None,
    purchase_id: int | None,
    amount_refunded: int,
) -> None:
    """Remember the largest running total of refunds a Charge has reported."""
    await conn.execute(UPSERT_CHARGE, charge_id, payment_intent_id, purchase_id, amount_refunded)


UPSERT_DISPUTE = """
insert into stripe_disputes (id, payment_intent_id, purchase_id, amount_cents, stage)
values ($1, $2, $3, $4, $5)
on conflict (id) do update set
    payment_intent_id = coalesce(stripe_disputes.payment_intent_id, excluded.payment_intent_id),
    purchase_id = coalesce(stripe_disputes.purchase_id, excluded.purchase_id),
    amount_cents = greatest(stripe_disputes.amount_cents, excluded.amount_cents),
    stage = greatest(stripe_disputes.stage, excluded.stage),
    updated_at = now()
"""


async def record_dispute(
    conn: Connection,
    dispute_id: str,
    *,
    payment_intent_id: str | None,
    purchase_id: int | None,
    amount_cents: int,
    stage: int,
) -> None:
    """Remember a Dispute at the furthest stage seen (withheld < reinstated < lost)."""
    await conn.execute(
        UPSERT_DISPUTE, dispute_id, payment_intent_id, purchase_id, amount_cents, stage
    )


@dataclass(frozen=True)
class Targets:
    """What Stripe says has been taken back from one payment, all events considered."""

    refunded_cents: int
    withheld_cents: int
    dispute_stage: int | None


# A refund counts while it has not failed. Without Refund objects, the Charge's running total
# stands in, less refunds known to have failed after it was reported.
SELECT_TARGETS = """
with r as (
    select coalesce(sum(amount_cents) filter (where not failed), 0) as live,
        coalesce(sum(amount_cents) filter (where failed), 0) as failed
    from stripe_refunds where purchase_id = $1 or payment_intent_id = $2
), c as (
    select coalesce(max(amount_refunded), 0) as reported
    from stripe_charge_refunds where purchase_id = $1 or payment_intent_id = $2
), d as (
    select coalesce(sum(amount_cents) filter (where stage <> 2), 0) as withheld,
        max(stage) as stage
    from stripe_disputes where purchase_id = $1 or payment_intent_id = $2
)
select greatest(r.live, c.reported - r.failed) as refunded, d.withheld, d.stage
from r, c, d
"""


async def targets(conn: Connection, purchase_id: int, payment_intent_id: str | None) -> Targets:
    """The refund and withheld-dispute totals recorded for a purchase (by id or PaymentIntent)."""
    row = await conn.fetchrow(SELECT_TARGETS, purchase_id, payment_intent_id)
    assert row is not None
    return Targets(
        refunded_cents=max(int(row["refunded"]), 0),
        withheld_cents=int(row["withheld"]),
        dispute_stage=row["stage"],
    )
