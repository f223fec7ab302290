"""The double-entry ledger and the wallet balances kept beside it.

Every movement is a list of legs `(account, amount_cents)` summing to zero, written with one
`txn_id`; a deferred constraint trigger refuses to commit an unbalanced one. A leg on a
`wallet:<user>` account also moves that user's `wallets.balance_cents` in the same statement
sequence, guarded so a spend never overdraws.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from backchannel.persistence.database import Connection

PLATFORM_FEE = "platform:fee"
STRIPE_CLEARING = "stripe:clearing"
DEV_GRANTS = "platform:dev_grants"
# Paid by card for something already owned, in a currency the wallet does not hold.
REFUNDS_DUE = "platform:refunds_due"
WALLET_CURRENCY = "usd"


def wallet_account(user_id: str) -> str:
    """The account of a fan's spendable balance."""
    return f"wallet:{user_id}"


def earnings_account(creator_id: str) -> str:
    """The account of what the platform owes a creator."""
    return f"earnings:{creator_id}"


def grants_account(key_name: str) -> str:
    """What one server API key granted (+) or took (-) across every wallet."""
    return f"grants:{key_name}"


class Wallet(BaseModel):
    """A user's spendable balance and its version (grows by one with every change)."""

    balance_cents: int
    currency: str
    version: int = 0


class Movement(BaseModel):
    """What one `post` did: the wallets it moved, and the id of each account's entry."""

    wallets: dict[str, Wallet]
    entry_ids: dict[str, int]


class LedgerEntry(BaseModel):
    """One leg of a movement, as a wallet statement shows it."""

    id: str
    amount_cents: int
    currency: str
    memo: str
    purchase_id: str | None
    created_at: datetime


ENSURE_WALLET = "insert into wallets (user_id) values ($1) on conflict (user_id) do nothing"

MOVE_WALLET = """
update wallets set balance_cents = balance_cents + $2, version = version + 1,
    updated_at = now()
where user_id = $1 and ($3::boolean or balance_cents + $2 >= 0)
returning balance_cents, currency, version
"""

INSERT_ENTRIES = """
insert into ledger_entries (txn_id, account, amount_cents, currency, purchase_id, memo)
select $1, account, amount, $4, $5, $6
from unnest($2::text[], $3::bigint[]) as leg (account, amount)
where amount <> 0
returning id, account
"""


async def post(
    conn: Connection,
    legs: list[tuple[str, int]],
    *,
    currency: str,
    memo: str,
    purchase_id: int | None = None,
    allow_overdraft: bool = False,
) -> Movement | None:
    """Write one balanced movement; returns the new state of each wallet it touched.

    Returns None, having written nothing, when a wallet leg would overdraw (unless
    `allow_overdraft`, used only for reversals of money that was already spent). The caller's
    transaction makes the movement and its effect one unit.
    """
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced legs: {legs}")
    wallets: dict[str, Wallet] = {}
    # Debits first, in a stable order, so two movements lock wallets in the same order.
    for account, amount in sorted(legs, key=lambda leg: (leg[1] > 0, leg[0])):
        if not account.startswith("wallet:") or amount == 0:
            continue
        user_id = account.removeprefix("wallet:")
        await conn.execute(ENSURE_WALLET, user_id)
        row = await conn.fetchrow(MOVE_WALLET, user_id, amount, allow_overdraft)
        if row is None:
            return None
        wallets[user_id] = Wallet(
            balance_cents=row["balance_cents"], currency=row["currency"], version=row["version"]
        )
    rows = await conn.fetch(
        INSERT_ENTRIES,
        uuid.uuid4(),
        [account for account, _ in legs],
        [amount for _, amount in legs],
        currency,
        purchase_id,
        memo,
    )
    return Movement(wallets=wallets, entry_ids={row["account"]: row["id"] for row in rows})


SELECT_WALLET = "select balance_cents, currency, version from wallets where user_id = $1"


async def get_wallet(conn: Connection, user_id: str) -> Wallet:
    """A user's balance (zero if they never had one)."""
    row = await conn.fetchrow(SELECT_WALLET, user_id)
    if row is None:
        return Wallet(balance_cents=0, currency=WALLET_CURRENCY)
    return Wallet(
        balance_cents=row["balance_cents"], currency=row["currency"], version=row["version"]
    )


SELECT_ACCOUNT_ENTRIES = """
select id::text, amount_cents, currency, memo, purchase_id::text, created_at
from ledger_entries where account = $1 order by id desc limit $2
"""


async def account_entries(conn: Connection, account: str, limit: int = 50) -> list[LedgerEntry]:
    """The newest entries of one account."""
    rows = await conn.fetch(SELECT_ACCOUNT_ENTRIES, account, limit)
    return [LedgerEntry.model_validate(dict(row)) for row in rows]


SELECT_ACCOUNT_BALANCE = (
    "select coalesce(sum(amount_cents), 0) from ledger_entries where account = $1"
)


async def account_balance(conn: Connection, account: str) -> int:
    """The sum of an account's entries."""
    return int(await conn.fetchval(SELECT_ACCOUNT_BALANCE, account))
