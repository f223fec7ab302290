"""The outbox you can trust (issue #13, item 7): a failed publish is kept and retried with
backoff, a row that always fails is dead-lettered without holding back the others, and a
publisher-side failure (the listener fine) loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from backchannel.domain import delivery
from backchannel.persistence import outbox
from backchannel.rooms.names import Namespace
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.redis_clients import open_redis
from backchannel.server.runtime import Runtime
from backchannel.server.settings import Settings
from tests.nodes import Node, eventually, node
from tests.outages import TcpProxy
from tests.services import RunServices

# No background publisher racing the test's own passes; retries due at once.
QUICK_RETRIES = {
    "outbox_poll_seconds": 3600.0,
    "outbox_retry_base_seconds": 0.01,
    "outbox_retry_max_seconds": 0.01,
}


def _runtime(n: Node) -> Runtime:
    return n.server.app[RUNTIME]


async def _rows(services: RunServices) -> dict[int, asyncpg.Record]:
    conn = await asyncpg.connect(services.database_url)
    try:
        records = await conn.fetch(
            "select id, attempts, last_error, sent_at, dead_at, next_attempt_at from outbox"
        )
    finally:
        await conn.close()
    return {r["id"]: r for r in records}


async def _add(rt: Runtime, *rows: tuple[str, str, str, dict[str, Any]]) -> list[int]:
    """Write outbox rows (namespace, user, event, payload) in one committed transaction."""
    async with rt.db.transaction() as conn:
        return [
            await outbox.add(conn, "emit_user", [namespace], user_id, event, payload)
            for namespace, user_id, event, payload in rows
        ]


def _failures(rt: Runtime, outcome: str) -> float:
    value = rt.metrics.registry.get_sample_value(
        "backchannel_outbox_publish_failures_total", {"outcome": outcome}
    )
    return value or 0.0


async def _outbox_cli(
    services: RunServices, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """Run the real `backchannel outbox list --dead` (its own event loop, so in a thread)."""
    from backchannel.server.cli import main

    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BACKCHANNEL_MIGRATE_ON_START", "false")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(main, ["outbox", "list", "--dead"])
    return code, out.getvalue()


async def test_a_poison_row_is_dead_lettered_without_blocking_the_rows_claimed_with_it(
    settings: Settings, services: RunServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with node(settings.model_copy(update={**QUICK_RETRIES, "outbox_max_attempts": 3})) as n:
        rt = _runtime(n)
        fan = await n.api.register()
        wallet = await n.sockets.connect("/ppv", fan, events=("wallet:balance",))
        # The middle row names a namespace that does not exist: it can never be delivered.
        first, poison, last = await _add(
            rt,
            ("/ppv", fan.id, "wallet:balance", {"n": 1}),
            ("/nowhere", fan.id, "wallet:balance", {"n": 2}),
            ("/ppv", fan.id, "wallet:balance", {"n": 3}),
        )
        await delivery.publish(rt, [first, poison, last])

        assert await wallet.wait_for("wallet:balance", 2) == [{"n": 1}, {"n": 3}]
        rows = await _rows(services)
        assert rows[first]["sent_at"] is not None and rows[last]["sent_at"] is not None
        assert rows[poison]["sent_at"] is None and rows[poison]["dead_at"] is None
        assert rows[poison]["attempts"] == 1 and "ValueError" in rows[poison]["last_error"]
        assert rows[poison]["next_attempt_at"] is not None

        async def dead() -> bool:
            await delivery.publish_stale_once(rt)
            return (await _rows(services))[poison]["dead_at"] is not None

        await eventually(dead, what="the poison row dead-lettered")
        assert (await _rows(services))[poison]["attempts"] == 3
        assert (_failures(rt, "retry"), _failures(rt, "dead")) == (2, 1)
        assert await delivery.publish_stale_once(rt) == 0  # never claimed again

        # Rows written after it are not held back either.
        (later,) = await _add(rt, ("/ppv", fan.id, "wallet:balance", {"n": 4}))
        await delivery.publish(rt, [later])
        assert (await wallet.wait_for("wallet:balance", 3))[2] == {"n": 4}

        async with n.api.session.get(f"{n.url}/metrics") as response:
            text = await response.text()
        assert "backchannel_outbox_dead 1.0" in text and "backchannel_outbox_backlog 0.0" in text

    code, printed = await _outbox_cli(services, tmp_path, monkeypatch)
    assert code == 0
    (line,) = printed.splitlines()
    fields = line.split("\t")
    assert fields[:5] == [str(poison), "emit_user", "/nowhere", fan.id, "wallet:balance"]
    assert fields[5] == "attempts 3" and "ValueError" in fields[7]


@pytest.fixture(params=["single", "routed"])
async def two_nodes(
    settings: Settings, services: RunServices, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on this run's Redis, in each cluster routing mode."""
    clustered = settings.model_copy(
        update={**QUICK_RETRIES, "redis_url": services.redis_url, "cluster_routing": request.param}
    )
    async with node(clustered) as a, node(clustered) as b:
        yield a, b


async def test_a_publish_failure_with_a_healthy_listener_loses_nothing(
    two_nodes: tuple[Node, Node], services: RunServices
) -> None:
    """Only node A's publishing connection breaks; its listener stays linked. The outbox row
    is kept and its publish retried (reaching B's socket); and every socket of every other node
    is told `server:resync` once A can publish again, for the best-effort emits that were lost
    (A's own sockets got those)."""
    a, b = two_nodes
    rt = _runtime(a)
    manager = a.server.app[SIO].manager
    assert isinstance(manager, ClusterManager)
    fan = await a.api.register()
    wallet = await b.sockets.connect("/ppv", fan, events=("wallet:balance", "server:resync"))
    on_a = await a.sockets.connect("/ppv", await a.api.register(), events=("server:resync",))

    host, port = services.redis_url.removeprefix("redis://").split("/")[0].split(":")
    # Not listening yet: the publisher's connections are refused until `start` (no cut, so
    # no connection accepted mid-cut can survive it); the listener keeps its own connection.
    proxy = TcpProxy(host, int(port))
    original = manager._publisher_client()
    manager._publisher = open_redis(
        services.redis_url.replace(f":{port}/", f":{proxy.port}/"), **manager.redis_options
    )
    try:
        (row,) = await _add(rt, ("/ppv", fan.id, "wallet:balance", {"balance_cents": 700}))
        await delivery.publish(rt, [row])
        kept = (await _rows(services))[row]
        assert kept["sent_at"] is None and kept["attempts"] == 1
        assert "PublishFailed" in kept["last_error"]
        # A best-effort emit is not an error for its caller; it is owed a resync instead.
        await a.emitter.to_user(Namespace.PPV, fan.id, "wallet:balance", {"lost": True})
        assert manager.resync_owed and a.linked()
        await wallet.assert_nothing("wallet:balance", within=0.2)

        await proxy.start()

        async def sent() -> bool:
            await delivery.publish_stale_once(rt)
            return (await _rows(services))[row]["sent_at"] is not None

        await eventually(sent, what="the retried publish")
        assert await wallet.wait_for("wallet:balance") == [{"balance_cents": 700}]
        await eventually(lambda: not manager.resync_owed, what="the resync paid")
        # At least one: a publish failing after a notice began owes another.
        resyncs = await wallet.wait_for("server:resync")
        assert {r["reason"] for r in resyncs} == {"cluster publish failed"}
        await on_a.assert_nothing("server:resync")  # A's own sockets missed nothing
    finally:
        through_proxy, manager._publisher = manager._publisher, original
        await through_proxy.aclose()
        await proxy.close()
