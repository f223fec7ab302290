"""Paying creators through Stripe Connect: an Express account, then Transfers of earnings.

A payout moves the amount from `earnings:<creator>` to `payouts:<creator>` in the same
transaction as its row, before Stripe is asked; a Transfer Stripe refuses moves it back.
The Transfer's idempotency key is the payout's id, so a retried request never pays twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backchannel.domain.earnings import balances, require_creator
from backchannel.domain.payment_models import MAX_AMOUNT_CENTS
from backchannel.errors import Conflict, Unavailable
from backchannel.persistence import earnings, ledger, payouts
from backchannel.persistence.database import Connection
from backchannel.persistence.payouts import Payout

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class PayoutAccount(BaseModel):
    """`POST /creator/payouts/account`."""

    account_id: str
    onboarding_url: str
    payouts_enabled: bool


class PayoutRequest(BaseModel):
    """`POST /creator/payouts`: the amount, or everything available."""

    model_config = ConfigDict(extra="forbid", strict=True)
    amount_cents: Annotated[StrictInt, Field(ge=1, le=100 * MAX_AMOUNT_CENTS)] | None = None


class PayoutView(BaseModel):
    """A payout as its creator sees it."""

    id: str
    amount_cents: int
    currency: str
    status: str
    transfer_id: str | None
    reversed_cents: int
    created_at: datetime

    @classmethod
    def of(cls, payout: Payout) -> PayoutView:
        """The public view of a payout row."""
        return cls.model_validate(payout.model_dump())


class PayoutList(BaseModel):
    """`GET /creator/payouts`, newest first."""

    items: list[PayoutView]


async def open_account(rt: Runtime, creator_id: str, role: str) -> PayoutAccount:
    """The creator's Express account (created once) and a fresh onboarding link."""
    require_creator(role)
    async with rt.db.connection() as conn:
        account = await payouts.get_account(conn, creator_id)
    if account is None:
        # Keyed by creator: two racing requests get the same account from Stripe.
        account_id = await rt.stripe.create_express_account(
            creator_id=creator_id, idempotency_key=f"bc-connect-account-{creator_id}"
        )
        async with rt.db.transaction() as conn:
            account = await payouts.insert_account(conn, creator_id, account_id)
    url = await rt.stripe.onboarding_link(account.account_id)
    return PayoutAccount(
        account_id=account.account_id,
        onboarding_url=url,
        payouts_enabled=account.payouts_enabled,
    )


def _legs(creator_id: str, amount: int) -> list[tuple[str, int]]:
    return [
        (ledger.earnings_account(creator_id), -amount),
        (earnings.payouts_account(creator_id), amount),
    ]


async def pay_out(rt: Runtime, creator_id: str, role: str, request: PayoutRequest) -> PayoutView:
    """Transfer available earnings to the creator's connected account."""
    require_creator(role)
    async with rt.db.transaction() as conn:
        # The account row lock makes one creator's payouts one at a time: no double spend.
        account = await payouts.get_account(conn, creator_id, for_update=True)
        if account is None or not account.payouts_enabled:
            raise Conflict(
                "payouts are not enabled: open a payout account and finish Stripe onboarding",
                {"payouts_enabled": False},
            )
        available, _ = await balances(conn, creator_id, rt.settings.earnings_hold_days)
        amount = request.amount_cents if request.amount_cents is not None else available
        if amount <= 0 or amount > available:
            raise Conflict(
                f"{max(available, 0)} cents are available to pay out",
                {"available_cents": max(available, 0)},
            )
        payout = await payouts.insert_payout(conn, creator_id, amount, ledger.WALLET_CURRENCY)
        await ledger.post(
            conn,
            _legs(creator_id, amount),
            currency=payout.currency,
            memo=f"payout {payout.id}",
        )
    try:
        transfer_id = await rt.stripe.transfer(
            amount_cents=amount,
            currency=payout.currency,
            destination=account.account_id,
            metadata={"bc_payout_id": payout.id, "bc_creator_id": creator_id},
            idempotency_key=f"bc-payout-{payout.id}",
        )
    except Unavailable:
        async with rt.db.transaction() as conn:
            await _fail(conn, payout)
        raise
    async with rt.db.transaction() as conn:
        current = await payouts.lock_payout(conn, payout_id=payout.pk)
        assert current is not None
        # A `transfer.reversed` may have been applied already: keep its status.
        status = "paid" if current.status == "pending" else current.status
        done = await payouts.set_payout(
            conn,
            payout.pk,
            status,
            transfer_id=transfer_id,
            reversed_cents=current.reversed_cents,
        )
    return PayoutView.of(done)


async def _fail(conn: Connection, payout: Payout) -> None:
    """Stripe refused the Transfer: the money goes back to the creator's earnings."""
    current = await payouts.lock_payout(conn, payout_id=payout.pk)
    if current is None or current.status != "pending":
        return
    await payouts.set_payout(conn, payout.pk, "failed")
    await ledger.post(
        conn,
        [(account, -amount) for account, amount in _legs(payout.creator_id, payout.amount_cents)],
        currency=payout.currency,
        memo=f"payout {payout.id} failed",
    )


async def list_payouts(rt: Runtime, creator_id: str, role: str) -> PayoutList:
    """`GET /creator/payouts`."""
    require_creator(role)
    async with rt.db.connection() as conn:
        rows = await payouts.list_payouts(conn, creator_id)
    return PayoutList(items=[PayoutView.of(row) for row in rows])


async def account_updated(conn: Connection, account_id: str | None, enabled: bool | None) -> str:
    """`account.updated`: record whether the account can receive payouts."""
    if not account_id or enabled is None:
        return "missing_account"
    creator = await payouts.set_payouts_enabled(conn, account_id, enabled)
    if creator is None:
        return "unknown_account"
    return "payouts_enabled" if enabled else "payouts_disabled"


async def transfer_reversed(
    conn: Connection, transfer_id: str | None, payout_id: str | None, amount_reversed: int | None
) -> str:
    """`transfer.reversed`: what Stripe took back (a running total) returns to earnings, once."""
    pk = int(payout_id) if payout_id and payout_id.isdigit() and len(payout_id) < 18 else None
    payout = await payouts.lock_payout(conn, payout_id=pk, transfer_id=transfer_id)
    if payout is None:
        return "unknown_transfer"
    if payout.status == "failed":
        return "payout_failed"
    total = min(max(amount_reversed or 0, 0), payout.amount_cents)
    delta = total - payout.reversed_cents
    if delta <= 0:
        return "transfer_reversal_already_applied"
    await ledger.post(
        conn,
        [(account, -amount) for account, amount in _legs(payout.creator_id, delta)],
        currency=payout.currency,
        memo=f"payout {payout.id} reversed",
    )
    status = "reversed" if total == payout.amount_cents else payout.status
    await payouts.set_payout(conn, payout.pk, status, transfer_id=transfer_id, reversed_cents=total)
    return "transfer_reversed"
