"""The presence stores decide transitions: in memory, and in Redis shared by several nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from backchannel.rooms.presence import Change, MemoryPresence, RedisPresence
from tests.services import RunServices


def _now() -> float:
    return time.time() * 1000


@pytest.fixture
async def redis(services: RunServices) -> AsyncIterator[Redis]:
    client = Redis.from_url(services.redis_url)
    yield client
    await client.aclose()


def _node(redis: Redis, services: RunServices, name: str, ttl: float = 10.0) -> RedisPresence:
    return RedisPresence(redis, services.redis_prefix, name, ttl)


async def test_memory_store_announces_online_once_and_offline_after_the_debounce() -> None:
    store = MemoryPresence()
    assert await store.apply({"u1": 1}, _now()) == [Change("u1", "online", 1)]
    assert await store.apply({"u1": 2}, _now()) == []
    closed = _now()
    assert await store.apply({"u1": 0}, closed) == []
    assert (await store.statuses(["u1", "u2"])) == {"u1": "online", "u2": "offline"}
    assert await store.due_offline(closed - 1, 100) == []
    [gone] = await store.due_offline(closed, 100)
    assert (gone.user_id, gone.status, gone.version) == ("u1", "offline", 0)
    assert gone.last_seen is not None
    assert gone.last_seen.timestamp() * 1000 == pytest.approx(closed)
    assert await store.due_offline(_now(), 100) == []
    assert (await store.statuses(["u1"])) == {"u1": "offline"}


async def test_memory_store_forgets_a_pending_offline_when_the_user_returns() -> None:
    store = MemoryPresence()
    await store.apply({"u1": 1}, _now())
    await store.apply({"u1": 0}, _now())
    assert await store.apply({"u1": 1}, _now()) == []
    assert await store.due_offline(_now() + 60_000, 100) == []


async def test_two_nodes_share_one_users_presence(redis: Redis, services: RunServices) -> None:
    a, b = _node(redis, services, "a"), _node(redis, services, "b")
    await a.heartbeat()
    await b.heartbeat()
    assert await a.apply({"u1": 1}, _now()) == [Change("u1", "online", 1)]
    assert await b.apply({"u1": 2}, _now()) == []
    # Counts are absolute: sending the same count again changes nothing.
    assert await b.apply({"u1": 2}, _now()) == []
    await a.apply({"u1": 0}, _now())
    assert await a.due_offline(_now() + 60_000, 100) == []
    closed = _now()
    await b.apply({"u1": 0}, closed)
    assert await b.set_status("u1", "away") == Change("u1", "away", 2)
    assert await b.set_status("u1", "away") is None
    assert (await a.statuses(["u1"])) == {"u1": "away"}
    assert (await a.versions(["u1", "u2"])) == {"u1": 2, "u2": 0}
    due = await asyncio.gather(a.due_offline(closed, 100), b.due_offline(closed, 100))
    assert sorted(len(d) for d in due) == [0, 1], "exactly one node announces the offline"
    assert (await a.statuses(["u1"])) == {"u1": "offline"}
    assert (await a.versions(["u1"])) == {"u1": 0}


async def test_a_dead_nodes_users_go_offline_unless_another_node_holds_them(
    redis: Redis, services: RunServices
) -> None:
    dead = _node(redis, services, "dead", ttl=0.2)
    alive = _node(redis, services, "alive")
    await dead.heartbeat()
    await alive.heartbeat()
    await dead.apply({"u1": 1, "u2": 3}, _now())
    await alive.apply({"u2": 1}, _now())
    assert await alive.reap_dead_nodes(_now()) == []
    await asyncio.sleep(0.3)
    await alive.heartbeat()
    reaped = await asyncio.gather(alive.reap_dead_nodes(_now()), alive.reap_dead_nodes(_now()))
    assert sorted(o.user_id for r in reaped for o in r) == ["u1"]
    assert (await alive.statuses(["u1", "u2"])) == {"u1": "offline", "u2": "online"}

    # The "dead" node was only stalled: it learns it was forgotten and sends its counts again.
    assert await dead.heartbeat() is True
    assert await dead.apply({"u1": 1, "u2": 3}, _now()) == [Change("u1", "online", 1)]
    assert await dead.heartbeat() is False


async def test_a_node_that_leaves_hands_its_users_over(redis: Redis, services: RunServices) -> None:
    a, b = _node(redis, services, "a"), _node(redis, services, "b")
    await a.heartbeat()
    await b.heartbeat()
    await a.apply({"u1": 1, "u2": 1}, _now())
    await b.apply({"u2": 1}, _now())
    gone = await a.leave(_now())
    assert [o.user_id for o in gone] == ["u1"]
    assert (await b.statuses(["u1", "u2"])) == {"u1": "offline", "u2": "online"}
