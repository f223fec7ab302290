"""Who blocks whom, cached per node and invalidated on every node when a block changes.

Typing, presence and notification checks ask this cache (a dict lookup once warm). A change
is committed first, then dropped from this node's cache and announced on a Redis channel so
every other node drops it too; a node that (re)links to Redis clears its whole cache, since it
may have missed announcements. Message delivery does not rely on the cache: the statement
that appends a message reads the blocks itself (`persistence.messages`), so a block made on
any node holds for the very next send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backchannel.outage_log import report

if TYPE_CHECKING:
    from backchannel.server.redis_clients import RedisClient

log = logging.getLogger(__name__)

MAX_USERS = 50_000


@dataclass(frozen=True)
class Relations:
    """One user's blocks, both ways."""

    blocks: frozenset[str]
    blocked_by: frozenset[str]

    def either(self, other: str) -> bool:
        """Whether this user and `other` block each other in either direction."""
        return other in self.blocks or other in self.blocked_by


LoadRelations = Callable[[str], Awaitable[tuple[set[str], set[str]]]]


def channel_name(redis_prefix: str) -> str:
    """The Redis channel on which nodes announce changed blocks."""
    return f"{redis_prefix}:blocks-changed"


class BlockCache:
    """This node's cache of block relations, and the channel that keeps nodes in step."""

    def __init__(
        self,
        load: LoadRelations,
        *,
        redis: RedisClient | None = None,
        channel: str = "",
        node_id: str = "",
        max_users: int = MAX_USERS,
    ) -> None:
        self._load = load
        self._redis = redis
        self._channel = channel
        self._node_id = node_id
        self._max = max_users
        self._cache: OrderedDict[str, Relations] = OrderedDict()
        # Bumped by every invalidation: a load that overlapped one is not cached.
        self._generation = 0
        self._closing = False
        self.linked = redis is None

    async def relations(self, user_id: str) -> Relations:
        """`user_id`'s blocks both ways, from the cache or the database."""
        known = self._cache.get(user_id)
        if known is not None:
            self._cache.move_to_end(user_id)
            return known
        generation = self._generation
        blocks, blocked_by = await self._load(user_id)
        found = Relations(frozenset(blocks), frozenset(blocked_by))
        if self.linked and generation == self._generation:
            self._cache[user_id] = found
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return found

    async def either(self, a: str, b: str) -> bool:
        """Whether `a` and `b` block each other in either direction."""
        return (await self.relations(a)).either(b)

    async def blockers(self, user_id: str, among: Iterable[str]) -> set[str]:
        """Those of `among` who block `user_id`."""
        blocked_by = (await self.relations(user_id)).blocked_by
        return {uid for uid in among if uid in blocked_by}

    def _drop(self, user_ids: Iterable[str]) -> None:
        self._generation += 1
        for uid in user_ids:
            self._cache.pop(uid, None)

    async def changed(self, user_ids: list[str]) -> None:
        """A block between these users changed (committed): forget it here and everywhere."""
        self._drop(user_ids)
        if self._redis is not None:
            message = json.dumps({"node": self._node_id, "users": user_ids})
            try:
                await self._redis.publish(self._channel, message)
            except Exception as exc:
                log.warning("block change not published: %s", exc)

    async def run(self) -> None:
        """Listen for other nodes' changes until stopped; start afresh after every gap."""
        if self._redis is None:
            return
        delay = 0.1
        while not self._closing:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                async with pubsub:
                    await pubsub.subscribe(self._channel)
                    self._generation += 1
                    self._cache.clear()  # whatever was announced while we were away
                    self.linked = True
                    delay = 0.1
                    while not self._closing:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._received(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                report(log, "block cache link (retrying)", exc)
            self.linked = False
            self._generation += 1
            self._cache.clear()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _received(self, raw: bytes | str) -> None:
        try:
            data = json.loads(raw)
            users = [str(uid) for uid in data["users"]]
        except (ValueError, KeyError, TypeError):
            return
        if data.get("node") != self._node_id:
            self._drop(users)

    def stop(self) -> None:
        """Ask the listener to finish."""
        self._closing = True
