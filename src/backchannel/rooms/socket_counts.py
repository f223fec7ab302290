"""How many sockets each user has open on a namespace, across the cluster.

Presence counts a user's sockets over every namespace; notifications need to know about one
namespace (is this user reading `/chat` anywhere?), so this keeps its own small count.

In Redis: one hash per (namespace, user), `<prefix>:sockets:<namespace>:<user>`, field node
id → sockets on that node. A node's field only counts while that node is alive (presence's
heartbeat key, when presence runs in Redis), so a SIGKILLed node's sockets stop counting once
its heartbeat lapses. Every write refreshes a one-day expiry as a last resort.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

log = logging.getLogger(__name__)

_EXPIRY_SECONDS = 86_400


class SocketCounts:
    """Open sockets per user on the tracked namespaces: in Redis when clustered, else here."""

    def __init__(
        self,
        redis: Redis | RedisCluster | None,
        prefix: str,
        node_id: str,
        alive_key: Callable[[str], str] | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._node_id = node_id
        self._alive_key = alive_key
        self._local: dict[tuple[str, str], int] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._batch: asyncio.Future[None] | None = None

    def _key(self, namespace: str, user_id: str) -> str:
        return f"{self._prefix}:sockets:{namespace.strip('/')}:{user_id}"

    async def opened(self, namespace: str, user_id: str) -> None:
        """A socket of `user_id` opened on this node."""
        local = (namespace, user_id)
        self._local[local] = self._local.get(local, 0) + 1
        await self._write(local)

    async def closed(self, namespace: str, user_id: str) -> None:
        """A socket of `user_id` closed on this node."""
        local = (namespace, user_id)
        left = self._local.get(local, 0) - 1
        if left > 0:
            self._local[local] = left
        else:
            self._local.pop(local, None)
        await self._write(local)

    async def _write(self, local: tuple[str, str]) -> None:
        """Write this (namespace, user)'s count, batched with every other count changed in the
        same loop turn: sockets connecting together (a reconnect storm) cost one pipeline per
        turn, not one round trip each. Counts are absolute, so a lost write heals on the next
        change of that user's count."""
        if self._redis is None:
            return
        self._dirty.add(local)
        if self._batch is None:
            self._batch = asyncio.ensure_future(self._flush())
        await asyncio.shield(self._batch)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the loop turn's other connects join
        dirty, self._dirty = self._dirty, set()
        self._batch = None
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            for namespace, user_id in dirty:
                key = self._key(namespace, user_id)
                count = self._local.get((namespace, user_id), 0)
                if count > 0:
                    pipe.hset(key, self._node_id, count)
                    pipe.expire(key, _EXPIRY_SECONDS)
                else:
                    pipe.hdel(key, self._node_id)
            await pipe.execute()

    async def republish(self) -> None:
        """Write every count this node holds again: Redis lost them (a restart), and a count
        is otherwise only rewritten when that user's sockets change."""
        if self._redis is None or not self._local:
            return
        self._dirty.update(self._local)
        if self._batch is None:
            self._batch = asyncio.ensure_future(self._flush())
        await asyncio.shield(self._batch)

    async def with_open(self, namespace: str, user_ids: Sequence[str]) -> set[str]:
        """Which of `user_ids` have at least one socket open on `namespace` on a live node."""
        if self._redis is None:
            return {uid for uid in user_ids if self._local.get((namespace, uid), 0) > 0}
        if not user_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(self._key(namespace, user_id))
            found = await pipe.execute()
        by_user: dict[str, list[str]] = {}
        for user_id, fields in zip(user_ids, found, strict=True):
            nodes = [_text(node) for node, count in fields.items() if int(count) > 0]
            if nodes:
                by_user[user_id] = nodes
        if not by_user or self._alive_key is None:
            return set(by_user)
        others = sorted({n for nodes in by_user.values() for n in nodes} - {self._node_id})
        alive = {self._node_id}
        if others:
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in others:
                    pipe.exists(self._alive_key(node))
                answers = await pipe.execute()
            alive.update(node for node, there in zip(others, answers, strict=True) if there)
        return {uid for uid, nodes in by_user.items() if any(n in alive for n in nodes)}

    async def forget_node(self) -> None:
        """On shutdown: this node's sockets no longer count."""
        if self._redis is None or not self._local:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for namespace, user_id in self._local:
                pipe.hdel(self._key(namespace, user_id), self._node_id)
            await pipe.execute()
        self._local.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
