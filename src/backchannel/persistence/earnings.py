"""What a creator earned: totals over the `earnings:` and `payouts:` accounts, and their lines."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection


def payouts_account(creator_id: str) -> str:
    """What has been paid out to a creator through Stripe."""
    return f"payouts:{creator_id}"


class Totals(BaseModel):
    """The raw sums behind `GET /creator/earnings`."""

    balance_cents: int
    in_hold_cents: int
    paid_out_cents: int
    refunded_cents: int
    disputed_cents: int


class KindTotals(BaseModel):
    """One kind of sale: what fans paid (less reversals) = fee + creator's net."""

    gross_cents: int
    fee_cents: int
    net_cents: int
    count: int


class EarningsLine(BaseModel):
    """One ledger line of a creator's earnings, with the sale it came from."""

    id: str
    amount_cents: int
    currency: str
    memo: str
    created_at: datetime
    purchase_id: str | None
    fan_id: str | None
    kind: str | None
    target_id: str | None
    available_at: datetime | None

    @field_validator("id", "purchase_id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> object:
        return None if value is None else str(value)


# $1 creator, $2 earnings account, $3 payouts account, $4 hold days. A sale is in hold while
# its completion is younger than the hold; its reversals (same purchase_id) count against it.
SELECT_TOTALS = """
select
    coalesce((select sum(amount_cents) from ledger_entries where account = $2), 0) as balance,
    coalesce((
        select sum(e.amount_cents) from ledger_entries e join purchases p on p.id = e.purchase_id
        where e.account = $2 and p.completed_at > now() - make_interval(days => $4)
    ), 0) as in_hold,
    coalesce((select sum(amount_cents) from ledger_entries where account = $3), 0) as paid_out,
    coalesce((
        select sum(refunded_cents) from purchases
        where creator_id = $1 and kind <> 'wallet_topup' and status <> 'credited'
    ), 0) as refunded,
    coalesce((
        select sum(disputed_cents) from purchases
        where creator_id = $1 and kind <> 'wallet_topup' and status <> 'credited'
    ), 0) as disputed
"""


async def totals(conn: Connection, creator_id: str, hold_days: int) -> Totals:
    """The sums over a creator's accounts and sales."""
    row = await conn.fetchrow(
        SELECT_TOTALS,
        creator_id,
        f"earnings:{creator_id}",
        payouts_account(creator_id),
        hold_days,
    )
    assert row is not None
    return Totals(
        balance_cents=row["balance"],
        in_hold_cents=row["in_hold"],
        paid_out_cents=row["paid_out"],
        refunded_cents=row["refunded"],
        disputed_cents=row["disputed"],
    )


SELECT_BY_KIND = """
select p.kind, count(*) as count,
    sum(p.amount_cents - p.refunded_cents - p.disputed_cents) as gross,
    sum(l.fee) as fee, sum(l.net) as net
from purchases p
cross join lateral (
    select coalesce(sum(amount_cents) filter (where account = 'platform:fee'), 0) as fee,
        coalesce(sum(amount_cents) filter (where account = $2), 0) as net
    from ledger_entries where purchase_id = p.id
) l
where p.creator_id = $1 and p.kind <> 'wallet_topup'
    and p.status in ('completed', 'refunded', 'disputed')
group by p.kind
"""


async def by_kind(conn: Connection, creator_id: str) -> dict[str, KindTotals]:
    """Sales per kind (ppv_message, content, tip, subscription)."""
    rows = await conn.fetch(SELECT_BY_KIND, creator_id, f"earnings:{creator_id}")
    return {
        row["kind"]: KindTotals(
            gross_cents=row["gross"], fee_cents=row["fee"], net_cents=row["net"], count=row["count"]
        )
        for row in rows
    }


SELECT_LINES = """
select e.id, e.amount_cents, e.currency, e.memo, e.created_at, e.purchase_id,
    p.buyer_id as fan_id, p.kind, p.target_id,
    case when p.completed_at > now() - make_interval(days => $3)
        then p.completed_at + make_interval(days => $3) end as available_at
from ledger_entries e left join purchases p on p.id = e.purchase_id
where e.account = $1 and ($2::bigint is null or e.id < $2)
order by e.id desc limit $4
"""


async def lines(
    conn: Connection, creator_id: str, *, before: int | None, limit: int, hold_days: int
) -> list[EarningsLine]:
    """A creator's earnings lines, newest first, before an entry id."""
    rows = await conn.fetch(SELECT_LINES, f"earnings:{creator_id}", before, hold_days, limit)
    return [EarningsLine.model_validate(dict(row)) for row in rows]
