"""`backchannel apikey create|list|revoke`: the key printed once works until it is revoked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.services import RunServices
from tests.support import Api


async def apikey(
    services: RunServices, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKCHANNEL_")}
    env.update(
        {
            "DATABASE_URL": services.database_url,
            "BACKCHANNEL_DATA_DIR": str(tmp_path),
            "BACKCHANNEL_MIGRATE_ON_START": "false",
        }
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "backchannel", "apikey", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_an_operator_creates_lists_and_revokes_a_key(
    api: Api, services: RunServices, tmp_path: Path
) -> None:
    created = await apikey(services, tmp_path, "create", "rewards")
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

    again = await apikey(services, tmp_path, "create", "rewards")
    assert again.returncode == 1 and "revoke it first" in again.stderr

    listed = await apikey(services, tmp_path, "list")
    assert listed.returncode == 0
    assert "rewards" in listed.stdout and secret[:10] in listed.stdout
    assert secret not in listed.stdout and "live" in listed.stdout

    revoked = await apikey(services, tmp_path, "revoke", "rewards")
    assert revoked.returncode == 0
    status, _ = await api.call("POST", "/api/v1/publish", json=publish, headers=headers)
    assert status == 401
    assert (await apikey(services, tmp_path, "revoke", "rewards")).returncode == 1
    assert "revoked" in (await apikey(services, tmp_path, "list")).stdout
