"""Fixtures: a real server on a real port, real Postgres and Redis, real clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.redis_cluster import LocalRedisCluster, running_cluster
from tests.services import RunServices, run_database, run_redis
from tests.support import Api, Sockets

TEST_JWT_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def services() -> Iterator[RunServices]:
    """This run's database (migrated once) and Redis prefix."""
    with run_database() as database_url, run_redis() as redis_url:
        yield RunServices(database_url, redis_url, f"bctest-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def settings(services: RunServices, tmp_path: Path) -> Settings:
    """Single-node settings against this run's database."""
    return Settings(
        database_url=services.database_url,
        redis_url=None,
        data_dir=tmp_path,
        jwt_secret=SecretStr(TEST_JWT_SECRET),
        migrate_on_start=False,
        db_pool_min_size=1,
        db_pool_max_size=10,
        redis_prefix=services.redis_prefix,
        shutdown_grace_seconds=1,
        # Most stories are about something else than who may message whom (tests/http/
        # test_dm_policy.py sets the production defaults back).
        fan_to_fan_dms=True,
        creator_dm_policy_default="everyone",
    )


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A real 3-primary Redis Cluster of this run, started when a test first asks for it."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(
    params=[
        "routed",
        "single",
        pytest.param("routed-on-redis-cluster", marks=pytest.mark.slow),
    ]
)
async def cluster_settings(
    settings: Settings, services: RunServices, request: pytest.FixtureRequest
) -> AsyncIterator[Settings]:
    """The same settings with Redis on, once per cluster routing mode and once on a real Redis
    Cluster: every cluster test passes whether nodes hear only their rooms' channels (sharded
    over three primaries, or on one Redis) or one channel for everything."""
    if request.param == "routed-on-redis-cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        yield settings.model_copy(update={"redis_url": cluster.url, "cluster_routing": "routed"})
        await cluster.flush()
        return
    yield settings.model_copy(
        update={"redis_url": services.redis_url, "cluster_routing": request.param}
    )


@pytest.fixture(autouse=True)
async def _clean_state(services: RunServices) -> AsyncIterator[None]:
    """Every test starts from empty tables and no Redis keys of this run."""
    yield
    conn = await asyncpg.connect(services.database_url)
    try:
        tables = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public' "
            "and tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await conn.execute(f"truncate {names} restart identity cascade")
    finally:
        await conn.close()
    redis = Redis.from_url(services.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{services.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[TestServer]:
    """Backchannel on a real port."""
    test_server = TestServer(create_app(settings), host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
def base_url(server: TestServer) -> str:
    """`http://127.0.0.1:<port>`."""
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[Api]:
    """An HTTP client of the running server."""
    async with aiohttp.ClientSession() as session:
        yield Api(base_url, session)


@pytest.fixture
async def sockets(base_url: str) -> AsyncIterator[Sockets]:
    """Socket.IO clients of the running server, all closed after the test."""
    opened = Sockets(base_url)
    yield opened
    await opened.close_all()
