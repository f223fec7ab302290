"""`backchannel ledger check`: reports every discrepancy and exits non-zero on any."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.services import RunServices
from tests.stripe_support import fake_stripe, ledger_check_cli, stripe_settings
from tests.support import Api

__all__ = ["fake_stripe", "stripe_settings"]


async def test_a_clean_ledger_passes_and_every_kind_of_tampering_is_reported(
    api: Api, services: RunServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan = await api.register()
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 500}, user=fan)
    code, printed = await ledger_check_cli(services, tmp_path, monkeypatch)
    assert code == 0, printed
    assert "checked: 1 wallet mirrors equal their ledger accounts" in printed
    assert "checked: 1 purchases match their ledger rows" in printed
    assert printed.strip().endswith("ledger OK")

    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute("update wallets set balance_cents = 499 where user_id = $1", fan.id)
        await conn.execute("update purchases set refunded_cents = 100")
        # An unbalanced movement can only exist if the trigger was bypassed: do that here.
        await conn.execute("alter table ledger_entries disable trigger ledger_entries_balanced")
        await conn.execute(
            "insert into ledger_entries (txn_id, account, amount_cents, currency, memo)"
            " values ($1, 'platform:fee', 7, 'usd', 'stray')",
            uuid.uuid4(),
        )
        await conn.execute("alter table ledger_entries enable trigger ledger_entries_balanced")
        creator = await api.register(role="creator")
        await conn.execute(
            "insert into content (creator_id, visibility, price_cents) values ($1, 'ppv', 100)",
            creator.id,
        )
        await conn.execute(
            "insert into content_unlocks (content_id, user_id) select id, $1 from content", fan.id
        )
        code, printed = await ledger_check_cli(services, tmp_path, monkeypatch)
    finally:
        await conn.execute("truncate ledger_entries")
        await conn.close()

    assert code == 1
    problems = [line for line in printed.splitlines() if line.startswith("DISCREPANCY")]
    assert len(problems) == 4, printed
    assert any("sums to 7 usd" in p for p in problems)
    assert any(f"wallet {fan.id} says 499, ledger 500" in p for p in problems)
    assert any("keeps 500 in the ledger, expected 400" in p for p in problems)
    assert any("is unlocked for" in p and "without a live purchase" in p for p in problems)
    assert "4 discrepancies" in printed
