"""Credits and debits by other backends: one row per (API key, idempotency key)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from backchannel.persistence.database import Connection

Direction = Literal["credit", "debit"]


class WalletGrant(BaseModel):
    """A recorded request and the answer it was first given."""

    key_name: str
    idempotency_key: str
    user_id: str
    direction: Direction
    amount_cents: int
    currency: str
    reason: str
    entry_id: int
    balance_cents: int
    version: int


# Serialises requests with the same (key, idempotency key): the second waits for the first to
# commit and then finds its row, instead of writing a second movement.
# Key names have no ':', so `name:key` is unambiguous.
LOCK_KEY = "select pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 12))"

SELECT_GRANT = """
select key_name, idempotency_key, user_id, direction, amount_cents, currency, reason, entry_id,
    balance_cents, version
from wallet_grants where key_name = $1 and idempotency_key = $2
"""


async def lock_and_get(conn: Connection, key_name: str, idempotency_key: str) -> WalletGrant | None:
    """Hold this idempotency key for the transaction; the earlier request's row, if any."""
    await conn.execute(LOCK_KEY, key_name, idempotency_key)
    row = await conn.fetchrow(SELECT_GRANT, key_name, idempotency_key)
    return WalletGrant.model_validate(dict(row)) if row else None


INSERT_GRANT = """
insert into wallet_grants (key_name, idempotency_key, user_id, direction, amount_cents,
    currency, reason, entry_id, balance_cents, version)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


async def insert(conn: Connection, grant: WalletGrant) -> None:
    """Record a request with its answer."""
    await conn.execute(
        INSERT_GRANT,
        grant.key_name,
        grant.idempotency_key,
        grant.user_id,
        grant.direction,
        grant.amount_cents,
        grant.currency,
        grant.reason,
        grant.entry_id,
        grant.balance_cents,
        grant.version,
    )
