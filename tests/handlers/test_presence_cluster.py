"""Presence across nodes: one Redis, one Postgres, watchers and users on different nodes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.processes import ServerProcess, settings_env, start_server
from tests.relations import subscribe
from tests.services import RunServices
from tests.support import Api, Sockets

DEBOUNCE = 1.0


@pytest.fixture
async def two_nodes(cluster_settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Two in-process nodes sharing this run's Redis and database."""
    configured = cluster_settings.model_copy(
        update={"presence_offline_debounce_seconds": DEBOUNCE, "presence_sweep_seconds": 0.1}
    )
    nodes = [TestServer(create_app(configured), host="127.0.0.1") for _ in range(2)]
    for node in nodes:
        await node.start_server()
    yield tuple(str(node.make_url("")).rstrip("/") for node in nodes)  # type: ignore[misc]
    for node in nodes:
        await node.close()


async def test_a_watcher_on_one_node_sees_a_user_on_another(
    two_nodes: tuple[str, str], services: RunServices
) -> None:
    url_a, url_b = two_nodes
    on_a, on_b = Sockets(url_a), Sockets(url_b)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(url_a, session)
            creator = await api.register(role="creator")
            fan = await api.register()
        await subscribe(services.database_url, fan.id, creator.id)
        watcher = await on_a.connect("/presence", fan, events=("presence",))
        ack = await watcher.call("presence:subscribe", {"user_ids": [creator.id]})
        assert ack["data"]["items"][0]["status"] == "offline"

        first = await on_b.connect("/chat", creator)
        [online] = await watcher.wait_for("presence")
        assert online["status"] == "online"
        second = await on_a.connect("/presence", creator)
        await first.disconnect()
        await watcher.assert_nothing("presence", within=DEBOUNCE + 0.5)
        ack = await watcher.call("presence:subscribe", {"user_ids": [creator.id]})
        assert ack["data"]["items"][0]["status"] == "online"

        await second.call("presence:set", {"status": "away"})
        [_, away] = await watcher.wait_for("presence", 2)
        assert away["status"] == "away"
        await second.disconnect()
        [*_, offline] = await watcher.wait_for("presence", 3, timeout=DEBOUNCE + 3)
        assert offline["status"] == "offline" and offline["last_seen"]
    finally:
        await on_a.close_all()
        await on_b.close_all()


def _node_env(services: RunServices, data_dir: Path) -> dict[str, str]:
    env = settings_env(
        database_url=services.database_url,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=data_dir,
    )
    env.update(
        {
            "BACKCHANNEL_PRESENCE_OFFLINE_DEBOUNCE_SECONDS": str(DEBOUNCE),
            "BACKCHANNEL_PRESENCE_HEARTBEAT_SECONDS": "0.5",
            "BACKCHANNEL_PRESENCE_NODE_TTL_SECONDS": "2",
            "BACKCHANNEL_PRESENCE_SWEEP_SECONDS": "0.2",
        }
    )
    return env


@pytest.mark.slow
async def test_when_a_node_is_killed_its_users_go_offline_on_the_others(
    services: RunServices, tmp_path: Path
) -> None:
    nodes: list[ServerProcess] = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        nodes.append(start_server(_node_env(services, folder), folder))
    node_a, node_b = nodes
    on_a, on_b = Sockets(node_a.url), Sockets(node_b.url)
    try:
        for node in nodes:
            await node.wait_ready()
        async with aiohttp.ClientSession() as session:
            api = Api(node_a.url, session)
            creator = await api.register(role="creator")
            fan = await api.register()
        await subscribe(services.database_url, fan.id, creator.id)
        watcher = await on_a.connect("/presence", fan, events=("presence",))
        assert (await watcher.call("presence:subscribe", {"user_ids": [creator.id]}))["ok"]

        await on_b.connect("/chat", creator)
        await on_b.connect("/presence", creator)
        [online] = await watcher.wait_for("presence", timeout=10)
        assert online["status"] == "online"

        node_b.kill()
        killed_at = time.monotonic()
        [_, offline] = await watcher.wait_for("presence", 2, timeout=30)
        assert time.monotonic() - killed_at < 30
        assert offline["user_id"] == creator.id and offline["status"] == "offline"
        assert offline["last_seen"] is not None
        await watcher.assert_nothing("presence", within=1.0)

        conn = await asyncpg.connect(services.database_url)
        try:
            stored = await conn.fetchval("select last_seen_at from users where id = $1", creator.id)
        finally:
            await conn.close()
        assert stored is not None
        ack = await watcher.call("presence:subscribe", {"user_ids": [creator.id]})
        assert ack["data"]["items"][0]["status"] == "offline"
    finally:
        await on_a.close_all()
        await on_b.close_all()
        for node in nodes:
            node.kill()
