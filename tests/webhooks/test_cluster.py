"""Across nodes: presence transitions arrive once, a node dying between commit and delivery
loses nothing, and two nodes never attempt the same event at once."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from backchannel.domain.api_keys import KEY_PREFIX, hash_key
from backchannel.persistence import api_keys as key_store
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.nodes import eventually
from tests.processes import ServerProcess, settings_env, start_server
from tests.services import RunServices
from tests.support import Api, Sockets
from tests.webhooks.conftest import bearer, subscribe
from tests.webhooks.receiver import Receiver

DEBOUNCE = 1.0


async def _key(database_url: str, name: str = "platform") -> str:
    """A server API key made as `backchannel apikey create` makes one."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    conn = await asyncpg.connect(database_url)
    try:
        await key_store.insert_key(conn, name, hash_key(secret), secret[:10])
    finally:
        await conn.close()
    return secret


# -- real processes -------------------------------------------------------------------------

PROCESS_ENV = {
    "BACKCHANNEL_WEBHOOK_RETRY_BASE_SECONDS": "0.1",
    "BACKCHANNEL_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "0.3",
    "BACKCHANNEL_WEBHOOK_POLL_SECONDS": "0.1",
    "BACKCHANNEL_WEBHOOK_TYPES_REFRESH_SECONDS": "0.1",
    # An attempt may take 1 s; a lapsed lease (its node died) is taken over after 3 s.
    "BACKCHANNEL_WEBHOOK_TIMEOUT_SECONDS": "1",
    "BACKCHANNEL_WEBHOOK_LEASE_SECONDS": "3",
}


def _env(services: RunServices, tmp_path: Path) -> dict[str, str]:
    env = settings_env(
        database_url=services.database_url,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env.update(PROCESS_ENV)
    return env


async def _publish(api: Api, key: str, user_id: str, title: str) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/publish",
        json={"user_ids": [user_id], "notification": {"type": "news", "title": title}},
        headers=bearer(key),
    )
    assert status == 202, body


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _started(env: dict[str, str], log_dir: Path, port: int | None = None) -> ServerProcess:
    process = start_server(env, _folder(log_dir), port=port)
    await process.wait_ready()
    return process


async def test_a_node_killed_between_commit_and_delivery_loses_nothing(
    services: RunServices, receiver: Receiver, tmp_path: Path
) -> None:
    env = _env(services, tmp_path)
    key = await _key(services.database_url)
    node = await _started(env, tmp_path / "first")
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(node.url, session)
            await subscribe(api, key, receiver, ["notification.created"])
            fan = await api.register()
            # The receiver is down (503) for the first attempts: every event is committed
            # and waiting for a retry when the node dies; one is mid-attempt (held).
            receiver.fail_status, receiver.fail_times = 503, 2
            for n in range(5):
                await _publish(api, key, fan.id, f"event {n}")
            await eventually(
                lambda: len(receiver.attempts) == 5, timeout=10, what="every event attempted"
            )
        receiver.hold_seconds = 0.5
        await eventually(lambda: any(receiver.in_flight.values()), what="an attempt in flight")
        node.kill()
        committed = dict(receiver.attempts)
        receiver.hold_seconds = 0.0

        node = await _started(env, tmp_path / "restarted", port=node.port)
        delivered = await receiver.wait_delivered("notification.created", 5, timeout=20)
    finally:
        node.kill()
    assert sorted(e["data"]["title"] for e in delivered) == [f"event {n}" for n in range(5)]
    assert {e["id"] for e in delivered} == set(committed), "the same ids after the restart"
    assert len(delivered) == 5, "each answered 2xx once"
    assert all(r.signed for r in receiver.received)


async def test_two_nodes_never_attempt_the_same_event_at_once(
    services: RunServices, receiver: Receiver, tmp_path: Path
) -> None:
    env = _env(services, tmp_path)
    key = await _key(services.database_url)
    nodes = [await _started(env, tmp_path / f"node{n}") for n in range(2)]
    try:
        # Slow answers and a failure per event: both nodes keep claiming while attempts run.
        receiver.hold_seconds, receiver.fail_times = 0.2, 1
        async with aiohttp.ClientSession() as session:
            apis = [Api(node.url, session) for node in nodes]
            await subscribe(apis[0], key, receiver, ["notification.created"])
            fan = await apis[0].register()
            for n in range(20):
                await _publish(apis[n % 2], key, fan.id, f"event {n}")
        delivered = await receiver.wait_delivered("notification.created", 20, timeout=30)
    finally:
        for node in nodes:
            node.kill()
    assert receiver.most_at_once == 1, "never two attempts of one event at the same time"
    assert len({e["id"] for e in delivered}) == 20 and len(delivered) == 20
    assert all(count == 2 for count in receiver.attempts.values()), receiver.attempts
    logs: list[Any] = [n.log() for n in nodes]
    assert all("Traceback" not in text for text in logs), logs


async def _view_has(node: ServerProcess, session: aiohttp.ClientSession, count: int) -> bool:
    async with session.get(f"{node.url}/metrics") as response:
        text = await response.text()
    return f"backchannel_webhook_subscribed_types {float(count)}" in text


async def test_online_and_offline_arrive_once_per_debounced_transition_across_two_nodes(
    services: RunServices, receiver: Receiver, tmp_path: Path
) -> None:
    env = _env(services, tmp_path)
    env.update(
        {
            "BACKCHANNEL_PRESENCE_OFFLINE_DEBOUNCE_SECONDS": str(DEBOUNCE),
            "BACKCHANNEL_PRESENCE_SWEEP_SECONDS": "0.1",
        }
    )
    key = await _key(services.database_url)
    nodes = [await _started(env, tmp_path / f"node{n}") for n in range(2)]
    on_a, on_b = Sockets(nodes[0].url), Sockets(nodes[1].url)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(nodes[0].url, session)
            await subscribe(api, key, receiver, ["user.online", "user.offline"])
            creator = await api.register(role="creator")
            for node in nodes:  # each node's cached view of subscribed types has caught up
                await eventually(lambda node=node: _view_has(node, session, 2), what="view")

            first = await on_b.connect("/chat", creator)
            second = await on_a.connect("/presence", creator)  # already online: no transition
            await receiver.wait_delivered("user.online")
            await first.disconnect()  # still a socket on node A: no transition
            await second.disconnect()  # now offline, after the debounce, decided once
            [offline] = await receiver.wait_delivered("user.offline", timeout=DEBOUNCE + 10)
            assert offline["data"]["user_id"] == creator.id
            assert offline["data"]["last_seen"] is not None
            again = await on_a.connect("/chat", creator)
            await receiver.wait_delivered("user.online", 2)
            await again.disconnect()
            await receiver.wait_delivered("user.offline", 2, timeout=DEBOUNCE + 10)
    finally:
        await on_a.close_all()
        await on_b.close_all()
        for node in nodes:
            node.kill()

    sequence = [(e["type"], e["data"]["user_id"]) for e in receiver.delivered()]
    assert sequence == [
        ("user.online", creator.id),
        ("user.offline", creator.id),
        ("user.online", creator.id),
        ("user.offline", creator.id),
    ]
    assert len({e["id"] for e in receiver.delivered()}) == 4
    assert all(r.signed for r in receiver.received)


async def test_an_endpoint_change_reaches_every_nodes_view_through_redis(
    settings: Settings, services: RunServices, receiver: Receiver
) -> None:
    # No periodic re-read within the test: only the announcement can tell node B.
    configured = settings.model_copy(
        update={"redis_url": services.redis_url, "webhook_types_refresh_seconds": 3600.0}
    )
    nodes = [TestServer(create_app(configured), host="127.0.0.1") for _ in range(2)]
    for node in nodes:
        await node.start_server()
    try:
        hub_b = nodes[1].app[RUNTIME].webhooks
        assert hub_b is not None and not hub_b.wants("user.banned")
        key = await _key(services.database_url)
        async with aiohttp.ClientSession() as session:
            api = Api(str(nodes[0].make_url("")).rstrip("/"), session)
            endpoint = await subscribe(api, key, receiver, ["user.banned"])
            await eventually(lambda: hub_b.wants("user.banned"), what="node B's view updated")
            status, _ = await api.call(
                "DELETE", f"/api/v1/webhook-endpoints/{endpoint['id']}", headers=bearer(key)
            )
            assert status == 204
            await eventually(lambda: not hub_b.wants("user.banned"), what="node B forgot it")
    finally:
        for node in nodes:
            await node.close()
