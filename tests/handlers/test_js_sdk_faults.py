"""The SDK's app-level stream survives a node kill and a Redis restart: no loss, no duplicate,
no reordering. Two server processes, their own redis-server, and a TCP proxy in front that
fails over to the surviving node (as a load balancer would)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.outages import RedisServer, TcpProxy
from tests.processes import settings_env, start_server
from tests.services import RunServices

SDK = Path(__file__).resolve().parents[2] / "clients" / "js"
COUNT = 40

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FAST = {
    "BACKCHANNEL_REDIS_PING_INTERVAL_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_RETRY_MAX_SECONDS": "0.5",
    "BACKCHANNEL_REDIS_TIMEOUT_SECONDS": "1",
    "BACKCHANNEL_DB_POOL_MIN_SIZE": "1",
    "BACKCHANNEL_DB_POOL_MAX_SIZE": "3",
}


async def _post(session: aiohttp.ClientSession, url: str, body: object, token: str = "") -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with session.post(url, json=body, headers=headers) as response:
        assert response.status in (200, 201), await response.text()
        answer: dict = await response.json()
        return answer


async def test_a_node_kill_and_a_redis_restart_lose_duplicate_and_reorder_nothing(
    services: RunServices, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None or not (SDK / "dist" / "esm" / "index.js").exists():
        pytest.skip("node and a built clients/js are needed (make test builds them)")
    redis = RedisServer(tmp_path)
    await redis.start()
    env = settings_env(
        database_url=services.database_url,
        redis_url=redis.url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env.update(FAST)
    a, b = start_server(env, tmp_path), start_server(env, tmp_path)
    proxy = TcpProxy("127.0.0.1", a.port)
    process = None
    try:
        await a.wait_ready()
        await b.wait_ready()
        await proxy.start()
        async with aiohttp.ClientSession() as session:
            users = []
            for role in ("creator", "fan"):
                users.append(
                    await _post(
                        session,
                        f"{b.url}/api/v1/auth/register",
                        {
                            "email": f"{role}-fault@example.com",
                            "password": "correct horse battery",
                            "display_name": role,
                            "role": role,
                        },
                    )
                )
        creator, fan = users
        conversation = await _open(b.url, creator["access_token"], fan["user"]["id"])
        process = await asyncio.create_subprocess_exec(
            node,
            str(SDK / "test" / "fault_check.mjs"),
            f"http://127.0.0.1:{proxy.port}",
            creator["access_token"],
            fan["access_token"],
            conversation,
            str(COUNT),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        lines: list[str] = []

        async def seen_at_least(k: int) -> None:
            while True:
                line = (await process.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, "\n".join(lines)
                lines.append(line.strip())
                if line.startswith("seen ") and int(line.split()[1]) >= k:
                    return

        await asyncio.wait_for(seen_at_least(8), 30)
        a.kill()  # both clients were on node a
        proxy.target = ("127.0.0.1", b.port)
        await proxy.cut()
        await proxy.restore()
        await asyncio.wait_for(seen_at_least(18), 30)
        redis.stop()
        await asyncio.sleep(1.5)
        await redis.start()
        rest = await asyncio.wait_for(process.stdout.read(), 60)
        lines.extend(rest.decode().splitlines())
        await process.wait()
        result = json.loads(lines[-1])
    finally:
        if process is not None and process.returncode is None:
            process.kill()
        await proxy.close()
        a.kill()
        b.kill()
        redis.stop()
    seen = result["seen"]
    assert [m["seq"] for m in seen] == list(range(1, COUNT + 1))
    assert [m["body"] for m in seen] == [f"m{i}" for i in range(COUNT)]
    assert [m["id"] for m in seen] == result["sent"]


async def _open(url: str, token: str, other: str) -> str:
    """The DM, opened by the creator over a plain socket.io client."""
    import socketio

    client = socketio.AsyncClient()
    await client.connect(url, namespaces=["/chat"], auth={"token": token}, transports=["websocket"])
    try:
        ack = await client.call(
            "conversation:open", {"participant_ids": [other]}, namespace="/chat"
        )
    finally:
        await client.disconnect()
    assert ack["ok"], ack
    conversation_id: str = ack["data"]["id"]
    return conversation_id
