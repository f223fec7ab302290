"""One way to open Redis: a single server (`redis://`) or a Redis Cluster (`redis+cluster://`).

A cluster URL names any one node (`redis+cluster://10.0.0.5:6379`); redis-py's `RedisCluster`
discovers the rest and sends each command to the node owning its key's slot. Keys a Lua script
or a transaction touches together share a hash tag (`{...}`) so they live in one slot.
"""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.driver_info import DriverInfo

RedisClient: TypeAlias = Redis | RedisCluster

# Connections per client to a single Redis (a cluster client has its own per node).
POOL_CONNECTIONS = 256

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster."""
    return url.split("://", 1)[0].lower() in _CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The plain `redis://` form of a cluster URL (what redis-py parses)."""
    scheme, separator, rest = url.partition("://")
    return f"{_CLUSTER_SCHEMES.get(scheme.lower(), scheme)}{separator}{rest}"


@functools.cache
def driver_info() -> DriverInfo:
    """The client name and version redis-py announces (`CLIENT SETINFO`), looked up once.

    Left to redis-py, every new connection reads the package metadata from disk (about 0.5 ms
    of CPU each): a pool growing under a reconnect storm paid it hundreds of times.
    """
    return DriverInfo()


def open_redis(url: str, **options: Any) -> RedisClient:
    """A client of the server or cluster `url` names; connects on first use."""
    options.setdefault("driver_info", driver_info())
    if is_cluster_url(url):
        # A cluster has one database; redis-py refuses `health_check_interval` on it.
        options.pop("health_check_interval", None)
        return RedisCluster.from_url(node_url(url), **options)
    # redis-py's default pool refuses the 101st concurrent command (MaxConnectionsError): under
    # a burst every publish and rate-limit check past it failed. Wait for a connection instead,
    # as long as a connect may take.
    wait = options.get("socket_connect_timeout") or 5.0
    pool = BlockingConnectionPool.from_url(
        url, max_connections=POOL_CONNECTIONS, timeout=wait, **options
    )
    return Redis.from_pool(pool)


def is_cluster(client: Any) -> bool:
    """Whether a client talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)
