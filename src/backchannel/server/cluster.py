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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import socketio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from backchannel.outage_log import OUTAGES
from backchannel.rooms.emitter import PublishFailed
from backchannel.rooms.fanout import FanoutMixin
from backchannel.server.cluster_routes import Channels, Sender, Subscriptions
from backchannel.server.redis_clients import (
    RedisClient,
    driver_info,
    is_cluster,
    is_cluster_url,
    node_url,
    open_redis,
)

log = logging.getLogger(__name__)

MEMBERSHIP = "bc:membership"
MOVED = "bc:moved"  # a node applied a routed room move


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


class _Receipts:
    """Answers to one routed room move: how many nodes heard it, how many have applied it."""

    def __init__(self) -> None:
        self.expected: int | None = None
        self.received = 0
        self.done = asyncio.Event()

    def add(self) -> None:
        self.received += 1
        self._check()

    def expect(self, count: int) -> None:
        self.expected = count
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.done.set()


class ClusterManager(_Membership, socketio.AsyncRedisManager, FanoutMixin):  # type: ignore[misc]
    """Many nodes: emits and room moves travel over Redis pub/sub.

    `routing="single"` puts everything on one channel every node hears (python-socketio's
    way). `routing="routed"` gives each routed room its own channel and subscribes a node only
    to the rooms its sockets are in (server/cluster_routes.py); a room move then waits until
    every node holding the moved sockets has applied it and is subscribed to the room, so an
    emit published after `move_members` returns reaches them on any Redis shard. `pubsub`
    picks SPUBLISH/SSUBSCRIBE (`sharded`), PUBLISH/SUBSCRIBE (`plain`), or sharded when the
    server is Redis 7 or newer (`auto`).

    Each node's local delivery (what arrives from Redis, or `ignore_queue` emits) goes
    through `FanoutMixin`, the write-once fast path, after the library's pub/sub layer.
    """

    name = "backchannel-redis"

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        prefix: str = "backchannel",
        routing: str = "single",
        pubsub: str = "auto",
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
        self.move_timeout = socket_timeout
        self.linked = False
        self.link_losses = 0
        self.reconnects = 0
        self.publish_failures = 0
        self.received = 0  # messages heard from Redis (foreign-traffic cost in the bench)
        self.moves_unconfirmed = 0
        self.on_restored: Callable[[], Awaitable[None]] | None = None
        # A publish failed while the listener may have stayed linked: other nodes' sockets
        # missed something. Owed until a `server:resync` to every node has been published.
        self.resync_owed = False
        self.on_publish_restored: Callable[[], Awaitable[None]] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._publisher: RedisClient | None = None
        self._closing = False
        self.sharded: bool | None = None if pubsub == "auto" else pubsub == "sharded"
        self.routes: Channels | None = None
        self.subscriptions: Subscriptions | None = None
        if routing == "routed":
            self.routes = Channels(prefix)
            self.subscriptions = Subscriptions(
                [self.routes.all, self.routes.node(self.host_id)], linger=ping_interval
            )
        self._receipts: dict[str, _Receipts] = {}
        self._seen: dict[str, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- routed membership ------------------------------------------------------------------

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Enter a room; in routed mode the node starts hearing a routed room's channel."""
        if self.subscriptions is not None:
            channel = self.routes.room(room)  # type: ignore[union-attr]
            if channel is not None and sid not in self.rooms.get(namespace, {}).get(room, ()):
                self.subscriptions.hold(channel)
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Leave a room; the channel goes once no local socket is left in it (and it lingered)."""
        if self.subscriptions is not None:
            channel = self.routes.room(room)  # type: ignore[union-attr]
            if channel is not None and sid in self.rooms.get(namespace, {}).get(room, ()):
                self.subscriptions.release(channel)
        super().basic_leave_room(sid, namespace, room)

    async def enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Enter a room; returns once this node hears the room's channel (routed mode), so an
        emit published anywhere after this reaches the socket."""
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self._hear(room)

    async def _hear(self, room: Any) -> None:
        if self.subscriptions is not None:
            channel = self.routes.room(room)  # type: ignore[union-attr]
            if channel is not None:
                await self.subscriptions.wait([channel], self.move_timeout)

    # -- publishing -------------------------------------------------------------------------

    def _publisher_client(self) -> RedisClient:
        if self._closing:
            # Shutdown goes on after `close` (presence announces offlines): a client opened
            # now would never be closed.
            raise ConnectionError("the cluster manager is closed")
        if self._publisher is None:
            # One quick retry covers a dropped pooled connection; a dead Redis must not hold
            # up the request that emitted for long.
            retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), 1)
            self._publisher = open_redis(self.redis_url, retry=retry, **self.redis_options)
        return self._publisher

    async def _publish(self, data: Any) -> None:
        """Publish once (redis-py reconnects by itself); raises `PublishFailed`.

        python-socketio calls this after delivering to this node's own sockets, so only the
        other nodes missed the message. The emitter logs that for best-effort emits, the
        outbox keeps its row and retries; either way the other nodes' sockets are owed a
        `server:resync` once publishing works again (`resync_owed`).
        """
        try:
            if self.routes is None:
                await self._publisher_client().publish(self.channel, self.json.dumps(data))
            else:
                channels = self._channels_of(data)
                if len(channels) > 1 and data.get("method") == "emit":
                    # A node in several of the rooms hears every copy: it delivers the first.
                    data = {**data, "mid": uuid.uuid4().hex}
                if channels:
                    await self._send_to(channels, self.json.dumps(data))
        except Exception as exc:
            self._publish_failed(exc)
            raise PublishFailed(f"{exc.__class__.__name__}: {exc}") from exc
        self._published()

    def _publish_failed(self, exc: Exception) -> None:
        self.publish_failures += 1
        self.resync_owed = True
        OUTAGES.failed("redis", "cluster publish", exc)
        if self.on_publish_restored is not None and (self._resync is None or self._resync.done()):
            self._resync = asyncio.ensure_future(self._pay_resync(self.on_publish_restored))

    async def emit_elsewhere(self, namespace: str, event: str, data: Any) -> None:
        """`event` to every socket of `namespace` on the other nodes only (this node's own
        sockets missed nothing when its publish failed); raises `PublishFailed`."""
        await self._publish(
            {
                "method": "emit",
                "event": event,
                "data": [data],
                "binary": False,
                "namespace": namespace,
                "room": None,
                "skip_sid": None,
                "callback": None,
                "host_id": self.host_id,
            }
        )

    def _published(self) -> None:
        if OUTAGES.failing("redis"):
            OUTAGES.recovered("redis")

    async def _pay_resync(self, notify: Callable[[], Awaitable[None]]) -> None:
        """Publish the owed `server:resync` until it goes through (it also probes Redis).

        The flag is cleared before each try and set again by a failure (of this notice or of
        any publish meanwhile), so a resync is never lost to a race or a swallowed error.
        """
        delay = 0.1
        while self.resync_owed and not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)
            self.resync_owed = False
            try:
                await notify()
            except Exception:
                self.resync_owed = True

    def _channels_of(self, data: dict[str, Any]) -> list[str]:
        """The routed-mode channels of one message (empty: no other node needs it)."""
        routes = self.routes
        assert routes is not None
        method = data.get("method")
        if method == "callback":
            return [routes.node(str(data.get("host_id")))]
        if method not in ("emit", "close_room") or data.get("room") is None:
            return [routes.all]  # a whole namespace, or a socket on some other node
        room = data["room"]
        channels: dict[str, None] = {}
        for one in room if isinstance(room, list) else [room]:
            channel = routes.room(one)
            if channel is None:
                namespace = data.get("namespace")
                if self.is_connected(one, namespace) or self.is_pre_connected(one, namespace):
                    continue  # a socket of this node: already delivered here
                channel = routes.all
            channels[channel] = None
        return list(channels)

    async def _is_sharded(self, client: RedisClient) -> bool:
        if self.sharded is None and is_cluster(client):
            self.sharded = True  # SSUBSCRIBE exists from Redis 7, as cluster pub/sub worth it
        if self.sharded is None:
            info = await client.info("server")
            major = str(info.get("redis_version", "0")).split(".", 1)[0]
            self.sharded = major.isdigit() and int(major) >= 7
        return self.sharded

    async def _send_to(self, channels: list[str], payload: str) -> int:
        """Publish `payload` on each channel; returns how many subscribers heard it in all."""
        client = self._publisher_client()
        sharded = await self._is_sharded(client)
        if len(channels) == 1:
            if sharded:
                return int(await client.spublish(channels[0], payload))
            return int(await client.publish(channels[0], payload))
        async with client.pipeline(transaction=False) as pipe:
            for channel in channels:
                if sharded:
                    pipe.spublish(channel, payload)
                else:
                    pipe.publish(channel, payload)
            return sum(int(heard) for heard in await pipe.execute())

    async def move_members(
        self, namespaces: list[str] | None, sources: list[str], room: str, *, join: bool
    ) -> None:
        """Here at once, and on every other node through Redis (in order with later emits)."""
        moved = self.apply_membership(namespaces, sources, room, join)
        message = {
            "method": MEMBERSHIP,
            "namespaces": namespaces,
            "sources": sources,
            "room": room,
            "join": join,
            "host_id": self.host_id,
        }
        if self.routes is None:
            # The emit channel is the move channel: every node applies it before later emits.
            await self._publish(message)
            return
        if join and moved:
            await self._hear(room)
        mid = message["mid"] = uuid.uuid4().hex
        receipts = self._receipts[mid] = _Receipts()
        targets = list(dict.fromkeys(self.routes.room(s) or self.routes.all for s in sources))
        try:
            try:
                receipts.expect(await self._send_to(targets, self.json.dumps(message)))
            except Exception as exc:
                self._publish_failed(exc)
                raise PublishFailed(f"{exc.__class__.__name__}: {exc}") from exc
            self._published()
            try:
                async with asyncio.timeout(self.move_timeout):
                    await receipts.done.wait()
            except TimeoutError:
                self.moves_unconfirmed += 1
                log.warning(
                    "room move not confirmed by every node",
                    extra={"heard": receipts.expected, "applied": receipts.received},
                )
        finally:
            del self._receipts[mid]

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
            self.received += 1
            try:
                data = self.json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict) or "method" not in data:
                continue
            method = data["method"]
            try:
                if method == "callback":
                    await self._handle_callback(data)
                elif method == MOVED:
                    receipts = self._receipts.get(str(data.get("mid")))
                    if receipts is not None:
                        receipts.add()
                elif data.get("host_id") != self.host_id:
                    if "mid" in data and method == "emit" and self._seen_before(data["mid"]):
                        continue
                    handler = handlers.get(method)
                    if handler is not None:
                        await handler(data)
                elif method == MEMBERSHIP and "mid" in data:
                    receipts = self._receipts.get(str(data["mid"]))
                    if receipts is not None:
                        receipts.add()  # our own move, heard on a room we hold: applied
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster message failed", extra={"method": method})

    def _seen_before(self, mid: Any) -> bool:
        key = str(mid)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > 10_000:
            del self._seen[next(iter(self._seen))]
        return False

    async def _handle_membership(self, message: dict[str, Any]) -> None:
        room = str(message["room"])
        join = bool(message.get("join"))
        moved = self.apply_membership(
            message.get("namespaces"), list(message.get("sources") or []), room, join
        )
        if self.routes is not None and "mid" in message:
            # Not awaited here: the confirmation of the room's SUBSCRIBE comes through this
            # very listener.
            task = asyncio.ensure_future(
                self._confirm_move(message, room if join and moved else None)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _confirm_move(self, message: dict[str, Any], heard_room: str | None) -> None:
        assert self.routes is not None
        if heard_room is not None:
            await self._hear(heard_room)
        origin = str(message.get("host_id"))
        receipt = {"method": MOVED, "mid": message["mid"], "host_id": origin}
        try:
            await self._send_to([self.routes.node(origin)], self.json.dumps(receipt))
        except Exception as exc:
            self._publish_failed(exc)

    async def _listen(self) -> AsyncIterator[bytes]:
        channel = self.channel.encode()
        subscriptions = self.subscriptions
        delay = 0.1
        while not self._closing:
            clients: list[Any] = []
            try:
                pubsubs, send = await self._open_links(clients)
                if subscriptions is None:
                    await pubsubs[0].subscribe(self.channel)
                    await self._set_linked(True)
                else:
                    await subscriptions.linked(send)
                delay = 0.1
                async for message in self._merged(pubsubs):
                    kind = message["type"]
                    if subscriptions is None:
                        if message.get("channel") == channel and kind == "message":
                            yield message["data"]
                    elif kind in ("message", "smessage"):
                        yield message["data"]
                    elif kind in ("subscribe", "ssubscribe"):
                        subscriptions.confirm(_text(message["channel"]))
                        if not self.linked and subscriptions.fixed <= subscriptions.confirmed:
                            # Linked once this node hears its own and the all channel.
                            await self._set_linked(True)
                    elif kind == "sunsubscribe" and (
                        _text(message["channel"]) in subscriptions.confirmed
                    ):
                        # Redis dropped a channel we still need: its slot moved to another
                        # shard (resharding, failover). Start over on the new topology.
                        raise ConnectionError("a shard channel's slot moved")
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
                if subscriptions is not None:
                    subscriptions.unlinked()
                for client in reversed(clients):
                    with contextlib.suppress(Exception):
                        await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _open_links(self, clients: list[Any]) -> tuple[list[Any], Sender]:
        """The pub/sub connections to listen on, and how to (un)subscribe channels on them.

        One connection to a single Redis; on a Redis Cluster with sharded pub/sub, one per
        primary, each channel subscribed on the primary owning its slot.
        """
        # No silent reconnects inside redis-py: every gap must surface in `_listen`, so the
        # app learns that events may have been missed. Closed in reverse order of opening.
        options = {
            **self.redis_options,
            "retry": Retry(NoBackoff(), 0),
            "driver_info": driver_info(),
        }
        routed = self.routes is not None
        if not is_cluster_url(self.redis_url):
            client = Redis.from_url(self.redis_url, **options)
            clients.append(client)
            pubsub = client.pubsub(ignore_subscribe_messages=not routed)
            clients.append(pubsub)
            return [pubsub], _sender(pubsub, sharded=routed and await self._is_sharded(client))
        cluster = RedisCluster.from_url(node_url(self.redis_url), **options)
        clients.append(cluster)
        await cluster.initialize()
        if not routed or not await self._is_sharded(cluster):
            # Plain pub/sub on a cluster reaches every node: one connection to any of them.
            pubsub = cluster.pubsub(ignore_subscribe_messages=not routed)
            clients.append(pubsub)
            return [pubsub], _sender(pubsub, sharded=False)
        links: dict[str, Any] = {}
        for primary in cluster.get_primaries():
            link = Redis(host=primary.host, port=int(primary.port), **options)
            clients.append(link)
            links[primary.name] = link.pubsub()
            clients.append(links[primary.name])
            await links[primary.name].connect()

        async def send(subscribe: bool, channels: list[str]) -> None:
            # One SSUBSCRIBE may only name channels of one slot.
            by_slot: dict[int, list[str]] = {}
            for channel in channels:
                by_slot.setdefault(cluster.keyslot(channel), []).append(channel)
            for slot, names in by_slot.items():
                owner = cluster.nodes_manager.get_node_from_slot(slot)
                pubsub = links.get(owner.name)
                if pubsub is None:
                    raise ConnectionError(f"slot {slot} moved to a new primary {owner.name}")
                await (pubsub.ssubscribe if subscribe else pubsub.sunsubscribe)(*names)

        return list(links.values()), send

    async def _merged(self, pubsubs: list[Any]) -> AsyncIterator[dict[str, Any]]:
        """The messages of every link in arrival order; fails when any link fails."""
        if len(pubsubs) == 1:
            async for message in self._messages(pubsubs[0]):
                yield message
            return
        queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

        async def pump(pubsub: Any) -> None:
            try:
                async for message in self._messages(pubsub):
                    queue.put_nowait(message)
            except Exception as exc:
                queue.put_nowait(exc)

        pumps = [asyncio.create_task(pump(pubsub)) for pubsub in pubsubs]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _messages(self, pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        """Messages as they come; pings an idle link and fails when Redis stops answering."""
        last_heard = time.monotonic()
        pinged_at: float | None = None
        subscriptions = self.subscriptions
        while not self._closing:
            message = await pubsub.get_message(timeout=self.ping_interval)
            now = time.monotonic()
            if subscriptions is not None:
                subscriptions.sweep()
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
        for task in list(self._tasks):
            task.cancel()
        if self._resync is not None:
            self._resync.cancel()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.aclose()
            self._publisher = None


def _sender(pubsub: Any, *, sharded: bool) -> Sender:
    """(Un)subscribe channels on this link, sharded or plain."""

    async def send(subscribe: bool, channels: list[str]) -> None:
        if sharded:
            await (pubsub.ssubscribe if subscribe else pubsub.sunsubscribe)(*channels)
        else:
            await (pubsub.subscribe if subscribe else pubsub.unsubscribe)(*channels)

    return send


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
        yield CounterMetricFamily(
            "backchannel_cluster_messages_received",
            "Messages this node heard from Redis (routed: only rooms it holds sockets in)",
            value=manager.received,
        )
        yield CounterMetricFamily(
            "backchannel_cluster_moves_unconfirmed",
            "Routed room moves not confirmed by every node holding the users in time",
            value=manager.moves_unconfirmed,
        )
        if manager.subscriptions is not None:
            yield GaugeMetricFamily(
                "backchannel_cluster_channels",
                "Redis channels this node is subscribed to (routed mode)",
                value=manager.subscriptions.count,
            )
