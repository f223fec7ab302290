"""What a creator earned, what is still in the hold, and what can be paid out.

A sale's creator share stays `pending` for `BACKCHANNEL_EARNINGS_HOLD_DAYS` after it completes;
its refunds and disputes carry the same purchase, so inside the hold they reduce pending first.
`available = balance - pending`, where the balance is the `earnings:<creator>` account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backchannel.errors import Forbidden
from backchannel.persistence import earnings, ledger
from backchannel.persistence.database import Connection
from backchannel.persistence.earnings import EarningsLine, KindTotals

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


def _zero() -> KindTotals:
    return KindTotals(gross_cents=0, fee_cents=0, net_cents=0, count=0)


class ByKind(BaseModel):
    """Sales per kind; `gross_cents == fee_cents + net_cents` (reversals already taken off)."""

    ppv_message: KindTotals = Field(default_factory=_zero)
    content: KindTotals = Field(default_factory=_zero)
    tip: KindTotals = Field(default_factory=_zero)
    subscription: KindTotals = Field(default_factory=_zero)


class Earnings(BaseModel):
    """`GET /creator/earnings`."""

    currency: str
    available_cents: int
    pending_cents: int
    paid_out_cents: int
    lifetime_cents: int = Field(description="net earned ever: available + pending + paid out")
    refunded_cents: int = Field(description="fans' money refunded on this creator's sales")
    disputed_cents: int = Field(description="fans' money withheld by open or lost disputes")
    hold_days: int
    by_kind: ByKind


class EntriesQuery(BaseModel):
    """`?cursor=&limit=`: the cursor is the last entry id of the previous page."""

    model_config = ConfigDict(extra="ignore")
    cursor: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,17}$")] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50

    @field_validator("cursor", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return value or None


class EarningsPage(BaseModel):
    """Earnings lines, newest first; `next_cursor` is null on the last page."""

    items: list[EarningsLine]
    next_cursor: str | None


def require_creator(role: str) -> None:
    """Earnings and payouts are a creator's."""
    if role != "creator":
        raise Forbidden("only creators have earnings")


async def balances(conn: Connection, creator_id: str, hold_days: int) -> tuple[int, int]:
    """`(available, pending)` for a creator, by the hold rule."""
    totals = await earnings.totals(conn, creator_id, hold_days)
    pending = min(max(totals.in_hold_cents, 0), max(totals.balance_cents, 0))
    return totals.balance_cents - pending, pending


async def summary(rt: Runtime, creator_id: str, role: str) -> Earnings:
    """`GET /creator/earnings`."""
    require_creator(role)
    hold = rt.settings.earnings_hold_days
    async with rt.db.connection() as conn:
        totals = await earnings.totals(conn, creator_id, hold)
        kinds = await earnings.by_kind(conn, creator_id)
    pending = min(max(totals.in_hold_cents, 0), max(totals.balance_cents, 0))
    return Earnings(
        currency=ledger.WALLET_CURRENCY,
        available_cents=totals.balance_cents - pending,
        pending_cents=pending,
        paid_out_cents=totals.paid_out_cents,
        lifetime_cents=totals.balance_cents + totals.paid_out_cents,
        refunded_cents=totals.refunded_cents,
        disputed_cents=totals.disputed_cents,
        hold_days=hold,
        by_kind=ByKind.model_validate(kinds),
    )


async def entries(rt: Runtime, creator_id: str, role: str, page: EntriesQuery) -> EarningsPage:
    """`GET /creator/earnings/entries`: newest first, each with its sale."""
    require_creator(role)
    async with rt.db.connection() as conn:
        items = await earnings.lines(
            conn,
            creator_id,
            before=int(page.cursor) if page.cursor else None,
            limit=page.limit,
            hold_days=rt.settings.earnings_hold_days,
        )
    more = len(items) == page.limit
    return EarningsPage(items=items, next_cursor=items[-1].id if more and items else None)
