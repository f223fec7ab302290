"""The ledger against real Postgres: balanced or nothing, and no overdraft."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from backchannel.persistence import ledger, ledger_check
from tests.services import RunServices


@pytest.fixture
async def conn(services: RunServices) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this run's database, with one user."""
    connection = await asyncpg.connect(services.database_url)
    await connection.execute("insert into users (id, display_name) values ('u1', 'U')")
    yield connection
    await connection.close()


async def test_an_unbalanced_movement_never_commits(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError):
        await ledger.post(conn, [("platform:fee", 5)], currency="usd", memo="x")
    with pytest.raises(asyncpg.RaiseError, match="does not balance"):
        async with conn.transaction():
            await conn.execute(
                "insert into ledger_entries (txn_id, account, amount_cents, currency, memo)"
                " values ($1, 'platform:fee', 5, 'usd', 'sneaky')",
                uuid.uuid4(),
            )
    assert await conn.fetchval("select count(*) from ledger_entries") == 0


async def test_a_wallet_is_never_overdrawn_but_a_reversal_may_take_it_negative(
    conn: asyncpg.Connection,
) -> None:
    wallet = ledger.wallet_account("u1")
    async with conn.transaction():
        granted = await ledger.post(
            conn, [(ledger.DEV_GRANTS, -100), (wallet, 100)], currency="usd", memo="grant"
        )
        assert granted is not None
        assert granted.wallets["u1"].balance_cents == 100
        assert granted.wallets["u1"].version == 1
    async with conn.transaction():
        assert (
            await ledger.post(
                conn, [(wallet, -150), (ledger.PLATFORM_FEE, 150)], currency="usd", memo="spend"
            )
            is None
        )
    async with conn.transaction():
        refunded = await ledger.post(
            conn,
            [(wallet, -150), (ledger.STRIPE_CLEARING, 150)],
            currency="usd",
            memo="refund",
            allow_overdraft=True,
        )
        assert refunded is not None
        assert refunded.wallets["u1"].balance_cents == -50
        # The refused spend changed nothing, so the version moved once more, not twice.
        assert refunded.wallets["u1"].version == 2
    assert await ledger.account_balance(conn, wallet) == -50
    assert (await ledger.get_wallet(conn, "u1")).balance_cents == -50
    assert (await ledger_check.check(conn)).problems == []
