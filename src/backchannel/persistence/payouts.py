"""Stripe Connect accounts of creators, and their payouts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection

PayoutStatus = Literal["pending", "paid", "failed", "reversed"]


class ConnectAccount(BaseModel):
    """A creator's Express account."""

    creator_id: str
    account_id: str
    payouts_enabled: bool


class Payout(BaseModel):
    """One transfer of earnings to a creator's connected account."""

    id: str
    creator_id: str
    amount_cents: int
    currency: str
    status: PayoutStatus
    transfer_id: str | None
    reversed_cents: int
    created_at: datetime

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> str:
        return str(value)

    @property
    def pk(self) -> int:
        """The numeric id."""
        return int(self.id)


SELECT_ACCOUNT = """
select creator_id, account_id, payouts_enabled from connect_accounts where creator_id = $1
"""
SELECT_ACCOUNT_FOR_UPDATE = SELECT_ACCOUNT + " for update"


async def get_account(
    conn: Connection, creator_id: str, *, for_update: bool = False
) -> ConnectAccount | None:
    """The creator's connected account (row-locked if asked: one payout at a time)."""
    row = await conn.fetchrow(
        SELECT_ACCOUNT_FOR_UPDATE if for_update else SELECT_ACCOUNT, creator_id
    )
    return ConnectAccount.model_validate(dict(row)) if row else None


INSERT_ACCOUNT = """
insert into connect_accounts (creator_id, account_id) values ($1, $2)
on conflict (creator_id) do nothing
returning creator_id, account_id, payouts_enabled
"""


async def insert_account(conn: Connection, creator_id: str, account_id: str) -> ConnectAccount:
    """Remember the creator's account; if one was recorded meanwhile, that one wins."""
    row = await conn.fetchrow(INSERT_ACCOUNT, creator_id, account_id)
    if row is None:
        found = await get_account(conn, creator_id)
        assert found is not None
        return found
    return ConnectAccount.model_validate(dict(row))


SET_PAYOUTS_ENABLED = """
update connect_accounts set payouts_enabled = $2, updated_at = now() where account_id = $1
returning creator_id
"""


async def set_payouts_enabled(conn: Connection, account_id: str, enabled: bool) -> str | None:
    """Record what `account.updated` says; the creator's id, or None for an unknown account."""
    value: str | None = await conn.fetchval(SET_PAYOUTS_ENABLED, account_id, enabled)
    return value


_COLUMNS = "id, creator_id, amount_cents, currency, status, transfer_id, reversed_cents, created_at"

INSERT_PAYOUT = f"""
insert into payouts (creator_id, amount_cents, currency, status) values ($1, $2, $3, 'pending')
returning {_COLUMNS}
"""


async def insert_payout(
    conn: Connection, creator_id: str, amount_cents: int, currency: str
) -> Payout:
    """A pending payout."""
    row = await conn.fetchrow(INSERT_PAYOUT, creator_id, amount_cents, currency)
    return Payout.model_validate(dict(row))


SET_PAYOUT = f"""
update payouts set status = $2, transfer_id = coalesce($3, transfer_id), reversed_cents = $4
where id = $1 returning {_COLUMNS}
"""


async def set_payout(
    conn: Connection,
    payout_id: int,
    status: PayoutStatus,
    *,
    transfer_id: str | None = None,
    reversed_cents: int = 0,
) -> Payout:
    """Move a payout on (the caller holds its row lock)."""
    row = await conn.fetchrow(SET_PAYOUT, payout_id, status, transfer_id, reversed_cents)
    return Payout.model_validate(dict(row))


SELECT_PAYOUT_BY_TRANSFER = f"select {_COLUMNS} from payouts where transfer_id = $1 for update"
SELECT_PAYOUT = f"select {_COLUMNS} from payouts where id = $1 for update"


async def lock_payout(
    conn: Connection, *, payout_id: int | None = None, transfer_id: str | None = None
) -> Payout | None:
    """A payout by id or transfer, row-locked."""
    row = None
    if transfer_id:
        row = await conn.fetchrow(SELECT_PAYOUT_BY_TRANSFER, transfer_id)
    if row is None and payout_id is not None:
        row = await conn.fetchrow(SELECT_PAYOUT, payout_id)
    return Payout.model_validate(dict(row)) if row else None


SELECT_PAYOUTS = f"select {_COLUMNS} from payouts where creator_id = $1 order by id desc limit $2"


async def list_payouts(conn: Connection, creator_id: str, limit: int = 100) -> list[Payout]:
    """A creator's payouts, newest first."""
    rows = await conn.fetch(SELECT_PAYOUTS, creator_id, limit)
    return [Payout.model_validate(dict(row)) for row in rows]
