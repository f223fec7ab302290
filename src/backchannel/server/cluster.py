"""Socket.IO managers: one node in memory, or many nodes over Redis pub/sub.

Both managers add what python-socketio lacks: moving every socket of some users into (or out
of) a room on whichever node holds them, so a subscription paid on node A puts the fan's
sockets on node B in the creator's room. The cluster manager sends that request on the same
pub/sub channel as emits, so a node applies it before any emit published after it.

`ClusterManager` also replaces `AsyncRedisManager`'s listener: its retry backoff grows to 60 s,
it blocks on the socket forever (a silent Redis is never noticed), and a failed publish swaps
the pub/sub object under the running listener. Here the listener pings an idle link, reconnects
with a short capped backoff, reports its state (`linked`, for `/readyz`), and tells the app
when a lost link is restored, because events published meanwhile never reached this node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import socketio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from backchannel.rooms.fanout import FanoutMixin

log = logging.getLogger(__name__)

MEMBERSHIP = "bc:membership"


class _Membership:
    """Room moves applied to the sockets this node holds."""

    def apply_membership(
        self, namespaces: list[str] | None, sources: list[str], room: str, join: bool
    ) -> int:
        """Every local socket in any of `sources` enters (or leaves) `room`; returns how many."""
        manager: Any = self  # the socketio.AsyncManager this is mixed into
        moved = 0
        for namespace in namespaces if namespaces is not None else list(manager.rooms):
            if not sources or namespace not in manager.rooms:
                continue
            for sid, eio_sid in list(manager.get_participants(namespace, sources)):
                if join:
                    manager.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
                else:
                    manager.basic_leave_room(sid, namespace, room)
                moved += 1
        return moved

    async def move_members(
        self, namespaces: list[str] | None, sources: list[str], room: str, *, join: bool
    ) -> None:
        """Sockets in `sources` enter or leave `room`, on every node (here: this one)."""
        self.apply_membership(namespaces, sources, room, join)


class LocalManager(_Membership, FanoutMixin):
    """Single node: rooms in this process only; broadcasts through the write-once fast path."""


class ClusterManager(_Membership, socketio.AsyncRedisManager, FanoutMixin):  # type: ignore[misc]
    """Many nodes: emits and room moves travel over one Redis pub/sub channel.

    Each node's local delivery (what arrives from the channel, or `ignore_queue` emits) goes
    through `FanoutMixin`, the write-once fast path, after the library's pub/sub layer.
    """

    name = "backchannel-redis"

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        ping_interval: float = 5.0,
        retry_max: float = 5.0,
        socket_timeout: float = 5.0,
    ) -> None:
        options = {
            "socket_keepalive": True,
            "socket_connect_timeout": socket_timeout,
            "socket_timeout": socket_timeout,
        }
        super().__init__(url, channel=channel, redis_options=options)
        self.ping_interval = ping_interval
        self.retry_max = retry_max
        self.linked = False
        self.link_losses = 0
        self.reconnects = 0
        self.publish_failures = 0
        self.on_restored: Callable[[], Awaitable[None]] | None = None
        self._publisher: Redis | None = None
        self._closing = False

    # -- publishing -------------------------------------------------------------------------

    def _publisher_client(self) -> Redis:
        if self._publisher is None:
            # One quick retry covers a dropped pooled connection; a dead Redis must not hold
            # up the request that emitted for long.
            retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), 1)
            self._publisher = Redis.from_url(self.redis_url, retry=retry, **self.redis_options)
        return self._publisher

    async def _publish(self, data: Any) -> None:
        """Publish once; redis-py reconnects by itself. A failure is logged, never raised:
        what was committed stays committed, and clients catch up when they resync."""
        try:
            await self._publisher_client().publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            self.publish_failures += 1
            log.warning("cluster publish failed: %s: %s", exc.__class__.__name__, exc)

    async def move_members(
        self, namespaces: list[str] | None, sources: list[str], room: str, *, join: bool
    ) -> None:
        """Here at once, and on every other node through the channel."""
        self.apply_membership(namespaces, sources, room, join)
        await self._publish(
            {
                "method": MEMBERSHIP,
                "namespaces": namespaces,
                "sources": sources,
                "room": room,
                "join": join,
                "host_id": self.host_id,
            }
        )

    # -- listening --------------------------------------------------------------------------

    async def _thread(self) -> None:
        """Dispatch what other nodes publish; never exits until cancelled."""
        handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "emit": self._handle_emit,
            "disconnect": self._handle_disconnect,
            "enter_room": self._handle_enter_room,
            "leave_room": self._handle_leave_room,
            "close_room": self._handle_close_room,
            MEMBERSHIP: self._handle_membership,
        }
        async for raw in self._listen():
            try:
                data = self.json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict) or "method" not in data:
                continue
            try:
                if data["method"] == "callback":
                    await self._handle_callback(data)
                elif data.get("host_id") != self.host_id:
                    handler = handlers.get(data["method"])
                    if handler is not None:
                        await handler(data)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster message failed", extra={"method": data.get("method")})

    async def _handle_membership(self, message: dict[str, Any]) -> None:
        self.apply_membership(
            message.get("namespaces"),
            list(message.get("sources") or []),
            str(message["room"]),
            bool(message.get("join")),
        )

    async def _listen(self) -> AsyncIterator[bytes]:
        channel = self.channel.encode()
        delay = 0.1
        while not self._closing:
            client: Redis | None = None
            try:
                # No silent reconnects inside redis-py: every gap must surface here, so the
                # app learns that events may have been missed.
                client = Redis.from_url(
                    self.redis_url, retry=Retry(NoBackoff(), 0), **self.redis_options
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                async with pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._set_linked(True)
                    delay = 0.1
                    async for message in self._messages(pubsub):
                        if message.get("channel") == channel and message["type"] == "message":
                            yield message["data"]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                was_linked = self.linked
                await self._set_linked(False)
                log.log(
                    logging.WARNING if was_linked else logging.DEBUG,
                    "cluster link down, retrying in %.1fs: %s: %s",
                    delay,
                    exc.__class__.__name__,
                    exc,
                )
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _messages(self, pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        """Messages as they come; pings an idle link and fails when Redis stops answering."""
        last_heard = time.monotonic()
        pinged_at: float | None = None
        while not self._closing:
            message = await pubsub.get_message(timeout=self.ping_interval)
            now = time.monotonic()
            if message is not None:
                last_heard, pinged_at = now, None
                yield message
                continue
            if pinged_at is not None:
                if now - pinged_at >= self.ping_interval:
                    raise ConnectionError("redis did not answer a ping")
            elif now - last_heard >= self.ping_interval:
                await pubsub.ping()
                pinged_at = now

    async def _set_linked(self, linked: bool) -> None:
        was = self.linked
        self.linked = linked
        if linked and not was:
            if self.link_losses:
                self.reconnects += 1
                log.warning("cluster link restored")
                if self.on_restored is not None:
                    try:
                        await self.on_restored()
                    except Exception:
                        log.exception("cluster link restore hook failed")
        elif was and not linked:
            self.link_losses += 1

    async def close(self) -> None:
        """Stop the listener and close the publishing connection; never hangs shutdown."""
        self._closing = True
        listener = getattr(self, "thread", None)
        if isinstance(listener, asyncio.Task) and not listener.done():
            listener.cancel()
            # On Python < 3.12 redis-py's internal `wait_for` can swallow a cancellation; the
            # loop also checks `_closing`, and shutdown does not wait for it forever.
            await asyncio.wait({listener}, timeout=2 * self.ping_interval + 1)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.aclose()
            self._publisher = None


class ClusterCollector:
    """Prometheus view of the cluster link: up or not, losses, failed publishes."""

    def __init__(self, manager: ClusterManager) -> None:
        self._manager = manager

    def collect(self) -> Iterable[Metric]:
        """Read at scrape time."""
        manager = self._manager
        yield GaugeMetricFamily(
            "backchannel_cluster_linked",
            "1 while this node is subscribed to the cluster channel",
            value=1.0 if manager.linked else 0.0,
        )
        yield CounterMetricFamily(
            "backchannel_cluster_link_losses",
            "Times the cluster link was lost",
            value=manager.link_losses,
        )
        yield CounterMetricFamily(
            "backchannel_cluster_reconnects",
            "Times the cluster link came back after a loss",
            value=manager.reconnects,
        )
        yield CounterMetricFamily(
            "backchannel_cluster_publish_failures",
            "Emits and room moves that could not be published to other nodes",
            value=manager.publish_failures,
        )
