"""`backchannel apikey create|list|revoke`: the key printed once works until it is revoked."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from backchannel.server.cli import main
from tests.services import RunServices
from tests.support import Api


@dataclass
class Outcome:
    """What one CLI run printed and returned."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    services: RunServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> Callable[..., Awaitable[Outcome]]:
    """Run `backchannel apikey ...` (in a thread: the CLI runs its own event loop)."""
    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BACKCHANNEL_MIGRATE_ON_START", "false")

    async def run(*args: str) -> Outcome:
        code = await asyncio.to_thread(main, ["apikey", *args])
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return run


async def test_an_operator_creates_lists_and_revokes_a_key(
    api: Api, services: RunServices, cli: Callable[..., Awaitable[Outcome]]
) -> None:
    created = await cli("create", "rewards")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("bck_") and "only time" in created.stderr

    conn = await asyncpg.connect(services.database_url)
    try:
        stored = await conn.fetchval("select key_hash from api_keys where name = 'rewards'")
    finally:
        await conn.close()
    assert secret.encode() not in stored

    fan = await api.register()
    publish = {"user_ids": [fan.id], "notification": {"type": "reward", "title": "A badge"}}
    headers = {"Authorization": f"Bearer {secret}"}
    status, _ = await api.call("POST", "/api/v1/publish", json=publish, headers=headers)
    assert status == 202

    reserved = await cli("create", "stream")
    assert reserved.returncode == 1 and "reserved" in reserved.stderr
    again = await cli("create", "rewards")
    assert again.returncode == 1 and "revoke it first" in again.stderr

    listed = await cli("list")
    assert listed.returncode == 0
    assert "rewards" in listed.stdout and secret[:10] in listed.stdout
    assert secret not in listed.stdout and "live" in listed.stdout

    revoked = await cli("revoke", "rewards")
    assert revoked.returncode == 0
    status, _ = await api.call("POST", "/api/v1/publish", json=publish, headers=headers)
    assert status == 401
    assert (await cli("revoke", "rewards")).returncode == 1
    assert "revoked" in (await cli("list")).stdout
