"""`/server/wallets/*`: another backend credits and debits wallets with its API key."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import api_keys
from backchannel.server.keys import RUNTIME
from tests.services import RunServices
from tests.stripe_support import balanced_ledger
from tests.support import Api, Sockets

__all__ = ["balanced_ledger"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _key(server: TestServer, name: str) -> dict[str, str]:
    _, secret = await api_keys.create_key(server.app[RUNTIME].db, name)
    return {"Authorization": f"Bearer {secret}"}


def change(amount: int, key: str, reason: str = "daily reward") -> dict[str, object]:
    return {"amount_cents": amount, "reason": reason, "idempotency_key": key}


async def test_a_game_backend_grants_and_takes_credits_once_per_key_and_never_overdraws(
    api: Api, sockets: Sockets, server: TestServer, services: RunServices
) -> None:
    game, rewards = await _key(server, "game"), await _key(server, "rewards")
    fan = await api.register()
    ppv = await sockets.connect("/ppv", fan, events=("wallet:balance",))
    base = f"/api/v1/server/wallets/{fan.id}"

    status, credited = await api.call(
        "POST", f"{base}/credits", json=change(500, "win-1"), headers=game
    )
    assert status == 201, credited
    assert credited["balance_cents"] == 500 and credited["version"] == 1
    (live,) = await ppv.wait_for("wallet:balance")
    assert live == {"balance_cents": 500, "currency": "usd", "version": 1}

    # The same request again (a retry), even concurrently: the first answer, nothing written.
    repeats = await asyncio.gather(
        *(
            api.call("POST", f"{base}/credits", json=change(500, "win-1"), headers=game)
            for _ in range(4)
        )
    )
    assert all(r == (201, credited) for r in repeats), repeats
    status, clash = await api.call(
        "POST", f"{base}/credits", json=change(501, "win-1"), headers=game
    )
    assert status == 409 and clash["error"]["code"] == "conflict"
    # Idempotency keys are per API key: another backend's "win-1" is its own.
    status, other = await api.call(
        "POST", f"{base}/credits", json=change(200, "win-1", "streak"), headers=rewards
    )
    assert status == 201 and other["balance_cents"] == 700 and other["version"] == 2

    status, short = await api.call(
        "POST", f"{base}/debits", json=change(701, "spend-1", "item"), headers=game
    )
    assert status == 402 and short["error"]["code"] == "payment_required"
    assert short["error"]["details"]["balance_cents"] == 700
    status, spent = await api.call(
        "POST", f"{base}/debits", json=change(650, "spend-1", "item"), headers=game
    )
    assert status == 201 and (spent["balance_cents"], spent["version"]) == (50, 3)

    status, wallet = await api.call("GET", base, headers=rewards)
    assert (status, wallet) == (200, {"balance_cents": 50, "currency": "usd", "version": 3})
    assert len(await ppv.wait_for("wallet:balance", 3)) == 3
    conn = await asyncpg.connect(services.database_url)
    try:
        by_key = dict(
            await conn.fetch(
                "select account, sum(amount_cents) from ledger_entries"
                " where account like 'grants:%' group by account"
            )
        )
        entry = await conn.fetchrow(
            "select account, amount_cents from ledger_entries where id = $1",
            int(spent["entry_id"]),
        )
    finally:
        await conn.close()
    # What each backend granted (negative) or took back (positive), one query.
    assert by_key == {"grants:game": 150, "grants:rewards": -200}
    assert dict(entry) == {"account": f"wallet:{fan.id}", "amount_cents": -650}


async def test_the_wallet_api_refuses_bad_keys_bad_bodies_and_unknown_users(
    api: Api, server: TestServer
) -> None:
    game = await _key(server, "game")
    fan = await api.register()
    base = f"/api/v1/server/wallets/{fan.id}"
    status, _ = await api.call("POST", f"{base}/credits", json=change(5, "k"))
    assert status == 401
    status, _ = await api.call("POST", f"{base}/credits", json=change(5, "k"), user=fan)
    assert status == 401
    for bad in (
        {**change(5, "k"), "amount_cents": "5"},
        {**change(5, "k"), "amount_cents": True},
        {**change(5, "k"), "amount_cents": 0},
        {**change(5, "k"), "reason": ""},
        {**change(5, "k"), "reason": "x" * 201},
        {**change(5, "k"), "idempotency_key": ""},
        {**change(5, "k"), "idempotency_key": "nul\u0000"},
        {**change(5, "k"), "currency": "eur"},
        {"amount_cents": 5, "reason": "no key"},
    ):
        status, answer = await api.call("POST", f"{base}/credits", json=bad, headers=game)
        assert status == 400, (bad, answer)
    status, _ = await api.call(
        "POST", "/api/v1/server/wallets/nobody/credits", json=change(5, "k"), headers=game
    )
    assert status == 404
    assert (await api.call("GET", "/api/v1/server/wallets/nobody", headers=game))[0] == 404
