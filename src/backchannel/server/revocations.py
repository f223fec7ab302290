"""Ended login sessions, known to every node at once, checked on every request and connect.

An access token lives `BACKCHANNEL_ACCESS_TOKEN_TTL_SECONDS`; once its session has ended it
must be refused before then. Each node keeps the ids of sessions ended within one token
lifetime in memory (a dict lookup per request, no round trip). The database is the source of
truth: a node loads the recently ended sessions when it starts and whenever its Redis link is
(re)established, so a revocation published while it was not listening is never missed. Redis
pub/sub is only the fast path between nodes; without Redis the node is alone and its memory is
the whole story.

Ending a session also ends its sockets: every node, on learning of an ended session, sends
`session:ended` to its own sockets of that session and disconnects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from backchannel.outage_log import report

if TYPE_CHECKING:
    from backchannel.server.redis_clients import RedisClient

log = logging.getLogger(__name__)

# Clocks of nodes and token issuers differ a little; keep entries a minute past a token's life.
_SKEW_SECONDS = 60.0


# A revocation id that names a user rather than a session: every socket of that user ends,
# those whose token names no session included (a ban).
USER_PREFIX = "user:"


def user_revocation(user_id: str) -> str:
    """The revocation id that ends every socket of `user_id` on every node."""
    return f"{USER_PREFIX}{user_id}"


def channel_name(redis_prefix: str) -> str:
    """The Redis channel on which nodes announce ended sessions."""
    return f"{redis_prefix}:sessions-ended"


EndSockets = Callable[[list[str], str], Awaitable[None]]
LoadEnded = Callable[[float], Awaitable[list[str]]]


class Revocations:
    """The ended sessions this node knows of, and the channel that tells the other nodes."""

    def __init__(
        self,
        *,
        token_ttl_seconds: float,
        end_sockets: EndSockets,
        load_ended: LoadEnded,
        redis: RedisClient | None = None,
        channel: str = "",
        node_id: str = "",
    ) -> None:
        self._keep = token_ttl_seconds + _SKEW_SECONDS
        self._end_sockets = end_sockets
        self._load_ended = load_ended
        self._redis = redis
        self._channel = channel
        self._node_id = node_id
        self._ended: dict[str, float] = {}
        self._pruned_at = time.monotonic()
        self._closing = False
        self.linked = redis is None

    def is_ended(self, session_id: str) -> bool:
        """Whether this session has ended (its tokens are refused)."""
        forget_at = self._ended.get(session_id)
        if forget_at is None:
            return False
        if forget_at < time.monotonic():
            del self._ended[session_id]
            return False
        return True

    def _remember(self, session_ids: Iterable[str]) -> list[str]:
        now = time.monotonic()
        new = [sid for sid in session_ids if sid not in self._ended]
        for sid in new:
            self._ended[sid] = now + self._keep
        if now - self._pruned_at > 60:
            self._pruned_at = now
            for sid in [s for s, at in self._ended.items() if at < now]:
                del self._ended[sid]
        return new

    async def load(self) -> None:
        """Learn the sessions ended within one token lifetime from the database."""
        self._remember(await self._load_ended(self._keep))

    async def ended(self, session_ids: list[str], reason: str) -> None:
        """These sessions ended (committed): refuse their tokens here, end their sockets on
        every node."""
        if not session_ids:
            return
        self._remember(session_ids)
        await self._end_local(session_ids, reason)
        if self._redis is not None:
            message = json.dumps({"node": self._node_id, "sids": session_ids, "reason": reason})
            try:
                await self._redis.publish(self._channel, message)
            except Exception as exc:
                # Other nodes reload from the database when their link returns; until then
                # their sockets of this session stay open (tokens are refused on this node).
                log.warning("session revocation not published: %s", exc)

    async def _end_local(self, session_ids: list[str], reason: str) -> None:
        try:
            await self._end_sockets(session_ids, reason)
        except Exception:
            log.exception("ending the sockets of ended sessions failed")

    async def run(self) -> None:
        """Listen for other nodes' revocations until stopped; reload after every gap."""
        if self._redis is None:
            return
        delay = 0.1
        while not self._closing:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                async with pubsub:
                    await pubsub.subscribe(self._channel)
                    await self.load()  # anything ended before we listened
                    self.linked = True
                    delay = 0.1
                    while not self._closing:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            await self._received(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                report(log, "session revocation link (retrying)", exc)
            self.linked = False
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _received(self, raw: bytes | str) -> None:
        try:
            data = json.loads(raw)
            sids = [str(sid) for sid in data["sids"]]
            reason = str(data.get("reason", "logout"))
        except (ValueError, KeyError, TypeError):
            return
        if data.get("node") == self._node_id:
            return
        self._remember(sids)
        await self._end_local(sids, reason)

    def stop(self) -> None:
        """Ask the listener to finish."""
        self._closing = True
