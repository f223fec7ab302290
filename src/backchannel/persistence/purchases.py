"""Purchases: one row per payment, pending while a card payment is under way."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection

Kind = Literal["ppv_message", "content", "tip", "wallet_topup", "subscription"]
Status = Literal["pending", "completed", "refunded", "disputed", "failed", "credited"]
DisputeStatus = Literal["withheld", "reinstated", "lost"]
PayWith = Literal["wallet", "card", "dev"]


class Purchase(BaseModel):
    """A payment and what it was for."""

    id: str
    buyer_id: str
    kind: Kind
    target_id: str | None
    creator_id: str | None
    amount_cents: int
    fee_cents: int
    currency: str
    pay_with: PayWith
    status: Status
    stripe_session_id: str | None = None
    stripe_payment_intent_id: str | None = None
    created_at: datetime
    completed_at: datetime | None
    refunded_at: datetime | None
    refunded_cents: int = 0
    disputed_cents: int = 0
    dispute_status: DisputeStatus | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> str:
        return str(value)

    @property
    def pk(self) -> int:
        """The numeric id."""
        return int(self.id)


_COLUMNS = """id, buyer_id, kind, target_id, creator_id, amount_cents, fee_cents, currency,
pay_with, status, stripe_session_id, stripe_payment_intent_id, created_at, completed_at,
refunded_at, refunded_cents, disputed_cents, dispute_status"""

INSERT_PURCHASE = f"""
insert into purchases (buyer_id, kind, target_id, creator_id, amount_cents, fee_cents,
    currency, pay_with, status, completed_at, stripe_invoice_id)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, case when $9 = 'completed' then now() end, $10)
returning {_COLUMNS}
"""


async def insert(
    conn: Connection,
    *,
    buyer_id: str,
    kind: Kind,
    target_id: str | None,
    creator_id: str | None,
    amount_cents: int,
    fee_cents: int,
    currency: str,
    pay_with: PayWith,
    status: Status,
    stripe_invoice_id: str | None = None,
) -> Purchase:
    """Record a purchase; a second completed purchase of the same thing raises `Conflict`."""
    row = await conn.fetchrow(
        INSERT_PURCHASE,
        buyer_id,
        kind,
        target_id,
        creator_id,
        amount_cents,
        fee_cents,
        currency,
        pay_with,
        status,
        stripe_invoice_id,
    )
    return Purchase.model_validate(dict(row))


INSERT_INVOICE_PURCHASE = f"""
insert into purchases (buyer_id, kind, target_id, creator_id, amount_cents, fee_cents,
    currency, pay_with, status, completed_at, stripe_invoice_id, stripe_payment_intent_id)
values ($1, 'subscription', $2, $2, $3, $4, $5, 'card', 'completed', now(), $6, $7)
on conflict (stripe_invoice_id) do nothing
returning {_COLUMNS}
"""


async def insert_invoice_payment(
    conn: Connection,
    *,
    buyer_id: str,
    creator_id: str,
    amount_cents: int,
    fee_cents: int,
    currency: str,
    invoice_id: str,
    payment_intent_id: str | None,
) -> Purchase | None:
    """Record a paid subscription invoice once; None if this invoice was already recorded."""
    row = await conn.fetchrow(
        INSERT_INVOICE_PURCHASE,
        buyer_id,
        creator_id,
        amount_cents,
        fee_cents,
        currency,
        invoice_id,
        payment_intent_id,
    )
    return Purchase.model_validate(dict(row)) if row else None


SELECT_FOR_UPDATE = f"select {_COLUMNS} from purchases where id = $1 for update"


async def lock(conn: Connection, purchase_id: int) -> Purchase | None:
    """A purchase, row-locked for the rest of the transaction."""
    row = await conn.fetchrow(SELECT_FOR_UPDATE, purchase_id)
    return Purchase.model_validate(dict(row)) if row else None


SELECT_BY_PAYMENT_INTENT = (
    f"select {_COLUMNS} from purchases where stripe_payment_intent_id = $1 for update"
)


async def lock_by_payment_intent(conn: Connection, payment_intent_id: str) -> Purchase | None:
    """The purchase a PaymentIntent paid for, row-locked."""
    row = await conn.fetchrow(SELECT_BY_PAYMENT_INTENT, payment_intent_id)
    return Purchase.model_validate(dict(row)) if row else None


SET_SESSION = "update purchases set stripe_session_id = $2 where id = $1"


async def set_session(conn: Connection, purchase_id: int, session_id: str) -> None:
    """Remember the Checkout Session created for a pending purchase."""
    await conn.execute(SET_SESSION, purchase_id, session_id)


SET_STATUS = f"""
update purchases set
    status = $2,
    fee_cents = coalesce($3, fee_cents),
    stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $4),
    completed_at = case when $2 in ('completed', 'credited') then now() else completed_at end,
    refunded_at = case when $2 = 'refunded' then now() else refunded_at end
where id = $1
returning {_COLUMNS}
"""


async def set_status(
    conn: Connection,
    purchase_id: int,
    status: Status,
    *,
    fee_cents: int | None = None,
    payment_intent_id: str | None = None,
) -> Purchase:
    """Move a purchase to a new status (the caller holds its row lock)."""
    row = await conn.fetchrow(SET_STATUS, purchase_id, status, fee_cents, payment_intent_id)
    return Purchase.model_validate(dict(row))


SET_REVERSED = f"""
update purchases set
    status = $2,
    refunded_cents = $3,
    disputed_cents = $4,
    dispute_status = $5,
    refunded_at = case when $2 in ('refunded', 'disputed') then coalesce(refunded_at, now()) end
where id = $1
returning {_COLUMNS}
"""


async def set_reversed(
    conn: Connection,
    purchase_id: int,
    *,
    status: Status,
    refunded_cents: int,
    disputed_cents: int,
    dispute_status: DisputeStatus | None,
) -> Purchase:
    """Record what has been reversed of a purchase (the caller holds its row lock)."""
    row = await conn.fetchrow(
        SET_REVERSED, purchase_id, status, refunded_cents, disputed_cents, dispute_status
    )
    return Purchase.model_validate(dict(row))


SELECT_OWNED = """
select exists (
    select 1 from purchases
    where buyer_id = $1 and kind = $2 and target_id = $3 and status = 'completed'
)
"""


async def owns(conn: Connection, buyer_id: str, kind: Kind, target_id: str) -> bool:
    """Whether a completed purchase of this thing exists."""
    return bool(await conn.fetchval(SELECT_OWNED, buyer_id, kind, target_id))
