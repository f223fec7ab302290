"""`create_app(settings)`: the one place the whole server is assembled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from backchannel.domain import account_rights, broadcasts, delivery, media_cleanup
from backchannel.domain import notifications as notification_ops
from backchannel.domain import sessions as session_ops
from backchannel.domain.event_models import ServerResync, ServerShutdown, SessionEnded
from backchannel.domain.presence import PresenceTracker
from backchannel.domain.stripe_gateway import StripeGateway
from backchannel.domain.tokens import TokenService
from backchannel.domain.typing_indicators import TypingIndicators
from backchannel.handlers.asyncapi import build_asyncapi
from backchannel.handlers.registry import NAMESPACE_CLASSES
from backchannel.http import (
    accounts,
    admin,
    api_docs,
    asyncapi,
    auth,
    content,
    conversations,
    demo,
    devices,
    earnings,
    health,
    media,
    notifications,
    openapi,
    profiles,
    purchases,
    safety,
    server_wallets,
    subscriptions,
    webhook_endpoints,
    webhooks,
)
from backchannel.http.middleware import cors, observe, rate_limits, security_headers
from backchannel.http.routing import RouteGroup
from backchannel.media.backends import open_store
from backchannel.media.links import MediaLinks
from backchannel.persistence import blocks, messages
from backchannel.persistence.database import open_database
from backchannel.persistence.message_appender import MESSAGE_WRITERS, MessageAppender
from backchannel.rooms.emitter import Emitter
from backchannel.rooms.names import Namespace, session_room, user_room
from backchannel.rooms.presence import MemoryPresence, PresenceStore, RedisPresence
from backchannel.rooms.socket_counts import SocketCounts
from backchannel.server import fast_paths
from backchannel.server.block_cache import BlockCache
from backchannel.server.block_cache import channel_name as block_channel
from backchannel.server.cluster import ClusterCollector, ClusterManager
from backchannel.server.embedded import reachable_database
from backchannel.server.keys import ASYNCAPI, ROUTE_SPECS, RUNTIME, SIO
from backchannel.server.mailer import Mailer
from backchannel.server.metrics import Metrics, PoolCollector
from backchannel.server.proxies import parse_networks
from backchannel.server.publish_stream import PublishStreamConsumer
from backchannel.server.push_providers import push_providers
from backchannel.server.push_worker import push_queue_worker
from backchannel.server.ratelimit import Rate, RateLimiter
from backchannel.server.realtime import build_socketio
from backchannel.server.redis_clients import open_redis
from backchannel.server.revocations import USER_PREFIX, Revocations, channel_name
from backchannel.server.runtime import Runtime
from backchannel.server.settings import Settings, ensure_jwt_secret, ensure_vapid_key
from backchannel.server.shutdown import ShutdownBudget
from backchannel.server.socket_sweep import socket_sweep
from backchannel.server.webhook_worker import webhook_worker

log = logging.getLogger(__name__)

# A background loop that ignores its cancellation longer than this is left behind.
BACKGROUND_STOP_SECONDS = 5.0

ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    health.routes,
    openapi.routes,
    api_docs.routes,
    asyncapi.routes,
    auth.routes,
    profiles.routes,
    content.routes,
    purchases.routes,
    subscriptions.routes,
    webhooks.routes,
    conversations.routes,
    notifications.routes,
    server_wallets.routes,
    earnings.routes,
    admin.routes,
    accounts.routes,
    media.routes,
    safety.routes,
    devices.routes,
    webhook_endpoints.routes,
    demo.routes,
    media.files,
)


def create_app(settings: Settings) -> web.Application:
    """Build the aiohttp application with Socket.IO attached; resources open on startup."""
    settings = ensure_vapid_key(ensure_jwt_secret(settings))
    paths = fast_paths.select(settings)  # the start-up self-check, before anything serves
    sio = build_socketio(settings, paths.enabled)
    runtime = Runtime(
        settings=settings,
        metrics=Metrics(redis=bool(settings.redis_url)),
        emitter=Emitter(sio),
        media_links=MediaLinks.from_secret(
            settings.jwt_secret_value(), settings.media_url_ttl_seconds, settings.media_base_url
        ),
        node_id=f"{socket.gethostname()}:{os.getpid()}:{id(sio):x}",
        trusted_proxies=parse_networks(settings.trusted_proxies),
        shutdown=ShutdownBudget(settings.shutdown_grace_seconds),
    )
    app = web.Application(
        client_max_size=settings.max_http_body_bytes,
        middlewares=[
            security_headers(https=settings.public_url.startswith("https://")),
            observe,
            cors(settings.cors_origin_list, dev=settings.env == "dev"),
            rate_limits(
                Rate.parse(settings.http_ip_rate_limit), Rate.parse(settings.http_user_rate_limit)
            ),
        ],
    )
    app[RUNTIME] = runtime
    app[SIO] = sio
    runtime.metrics.registry.register(PoolCollector(lambda: runtime._db))
    sio.eio.on_slow_consumer = runtime.metrics.slow_consumers.inc
    runtime.metrics.registry.register(fast_paths.FastPathCollector(paths))
    for namespace in Namespace:
        runtime.metrics.connections.labels(namespace.value)  # every namespace shows, even at 0
    sio.attach(app)
    for namespace_class in NAMESPACE_CLASSES:
        sio.register_namespace(namespace_class(runtime))
    specs = []
    for group in ROUTE_GROUPS:
        group.mount(app)
        specs.extend(group.specs)
    app[ROUTE_SPECS] = specs
    app[ASYNCAPI] = build_asyncapi(NAMESPACE_CLASSES)

    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_presence)
    app.cleanup_ctx.append(_socket_counts)
    app.cleanup_ctx.append(_socketio)
    app.cleanup_ctx.append(_revocations)
    app.cleanup_ctx.append(_block_cache)
    app.cleanup_ctx.append(_mailer)
    app.cleanup_ctx.append(_erasure_sweeper)
    app.cleanup_ctx.append(_stripe)
    app.cleanup_ctx.append(_outbox_publisher)
    app.cleanup_ctx.append(_broadcast_sweeper)
    app.cleanup_ctx.append(_publish_stream)
    app.cleanup_ctx.append(_notification_retention)
    app.cleanup_ctx.append(_typing_indicators)
    app.cleanup_ctx.append(_media_store)
    app.cleanup_ctx.append(_media_cleanup)
    app.cleanup_ctx.append(push_providers)
    app.cleanup_ctx.append(push_queue_worker)
    app.cleanup_ctx.append(webhook_worker)
    app.cleanup_ctx.append(socket_sweep)
    app.on_shutdown.append(_drain)
    return app


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    runtime.http = aiohttp.ClientSession()
    runtime._tokens = TokenService(runtime.settings, runtime.http)
    yield
    await runtime.http.close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    async with reachable_database(settings, may_create=True) as dsn:
        runtime._db = await open_database(
            dsn,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            warm_up=messages.prepare_sends,
            acquire_timeout=settings.db_acquire_timeout_seconds,
        )
        # Few writers make big batches when busy; never more than half the pool, so other work
        # always finds a connection. Lone writes (locked conversations) get their own share.
        runtime._appender = MessageAppender(
            runtime._db,
            concurrency=min(MESSAGE_WRITERS, max(1, settings.db_pool_max_size // 2)),
            alone_limit=max(1, int(settings.db_pool_max_size * settings.db_write_alone_share)),
            alone_wait=settings.db_acquire_timeout_seconds,
        )
        yield
        runtime._appender = None
        await runtime._db.close(timeout=runtime.shutdown.seconds_left())
        runtime._db = None


async def _redis(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    if not runtime.settings.redis_url:
        runtime._limiter = RateLimiter(None, runtime.settings.redis_prefix, refused=_count(runtime))
        yield
        return
    # No socket_timeout: blocking commands (XREADGROUP BLOCK) share this client; callers that
    # must not hang on a silent Redis bound their own calls (the rate limiter does).
    runtime.redis = open_redis(
        runtime.settings.redis_url,
        health_check_interval=10,
        socket_keepalive=True,
        socket_connect_timeout=runtime.settings.redis_timeout_seconds,
    )
    try:
        await runtime.redis.ping()
    except Exception as exc:
        log.warning("redis not reachable at start-up: %s", exc)
    runtime._limiter = RateLimiter(
        runtime.redis,
        runtime.settings.redis_prefix,
        refused=_count(runtime),
        timeout=runtime.settings.redis_breaker_timeout_seconds,
        open_seconds=runtime.settings.redis_breaker_open_seconds,
        tripped=runtime.metrics.breaker_trips.inc,
    )
    yield
    await runtime.redis.aclose()
    runtime.redis = None


def _count(runtime: Runtime) -> Callable[[str], None]:
    return lambda scope: runtime.metrics.rate_limited.labels(scope).inc()


async def _presence(app: web.Application) -> AsyncIterator[None]:
    """Presence in Redis when clustered, else in memory; stops after the sockets have closed."""
    runtime = app[RUNTIME]
    settings = runtime.settings
    store: PresenceStore
    if runtime.redis is not None:
        store = RedisPresence(
            runtime.redis,
            settings.redis_prefix,
            runtime.node_id,
            settings.presence_node_ttl_seconds,
        )
    else:
        store = MemoryPresence()
    tracker = PresenceTracker(runtime, store)
    await tracker.start()
    runtime.presence = tracker
    yield
    await tracker.stop()
    runtime.presence = None


async def _socketio(app: web.Application) -> AsyncIterator[None]:
    sio = app[SIO]
    runtime = app[RUNTIME]
    if isinstance(sio.manager, ClusterManager):
        sio.manager.on_restored = lambda: _resync_after_gap(runtime)
        manager = sio.manager
        manager.on_publish_restored = lambda: _resync_after_failed_publish(manager)
        runtime.metrics.registry.register(ClusterCollector(sio.manager))
    if not sio.manager_initialized:
        # python-socketio subscribes on the first connect; subscribe now so `/readyz` can
        # report the cluster link before any socket arrives.
        sio.manager_initialized = True
        sio.manager.initialize()
    yield
    await sio.shutdown()
    if isinstance(sio.manager, ClusterManager):
        await sio.manager.close()


async def _revocations(app: web.Application) -> AsyncIterator[None]:
    """Ended sessions: loaded from the database, shared with other nodes through Redis."""
    runtime = app[RUNTIME]

    async def end_sockets(session_ids: list[str], reason: str) -> None:
        for session_id in session_ids:
            room = (
                user_room(session_id.removeprefix(USER_PREFIX))
                if session_id.startswith(USER_PREFIX)
                else session_room(session_id)
            )
            await runtime.emitter.end_local_room(room, "session:ended", SessionEnded(reason=reason))

    async def load_ended(seconds: float) -> list[str]:
        return await session_ops.recently_ended(runtime, seconds)

    revocations = Revocations(
        token_ttl_seconds=runtime.settings.access_token_ttl_seconds,
        end_sockets=end_sockets,
        load_ended=load_ended,
        redis=runtime.redis,
        channel=channel_name(runtime.settings.redis_prefix),
        node_id=runtime.node_id,
    )
    await revocations.load()
    runtime._revocations = revocations
    task = asyncio.create_task(revocations.run(), name="session-revocations")
    yield
    revocations.stop()
    await _stop(task, app[RUNTIME].shutdown)
    runtime._revocations = None


async def _block_cache(app: web.Application) -> AsyncIterator[None]:
    """Who blocks whom, cached here; changes announced to every node through Redis."""
    runtime = app[RUNTIME]

    async def load(user_id: str) -> tuple[set[str], set[str]]:
        async with runtime.db.connection() as conn:
            return await blocks.relations(conn, user_id)

    cache = BlockCache(
        load,
        redis=runtime.redis,
        channel=block_channel(runtime.settings.redis_prefix),
        node_id=runtime.node_id,
    )
    runtime._blocks = cache
    task = asyncio.create_task(cache.run(), name="block-cache")
    yield
    cache.stop()
    await _stop(task, app[RUNTIME].shutdown)
    runtime._blocks = None


async def _mailer(app: web.Application) -> AsyncIterator[None]:
    """Send queued mail (email codes) after commit, with retries."""
    runtime = app[RUNTIME]
    mailer = Mailer(runtime.settings, runtime.db)
    runtime._mailer = mailer
    task = asyncio.create_task(mailer.run(), name="mailer")
    yield
    mailer.stop()
    await _stop(task, app[RUNTIME].shutdown)
    runtime._mailer = None


async def _erasure_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Erase deleted accounts whose grace period has passed, periodically."""
    runtime = app[RUNTIME]
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                erased = await account_rights.erase_due(runtime)
                if erased:
                    log.info("deleted accounts erased", extra={"count": erased})
            except Exception as exc:
                log.warning("erasure sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 60.0)

    task = asyncio.create_task(loop(), name="erasure-sweeper")
    yield
    stopping.set()
    await _stop(task, app[RUNTIME].shutdown)


async def _resync_after_gap(runtime: Runtime) -> None:
    """The cluster link was down: events other nodes published meanwhile never reached this
    node's sockets. They are all in the database; tell the sockets to fetch them."""
    notice = ServerResync(reason="cluster link restored")
    for namespace in Namespace:
        with contextlib.suppress(Exception):
            await runtime.emitter.to_local_sockets(namespace, "server:resync", notice)


async def _resync_after_failed_publish(manager: ClusterManager) -> None:
    """A publish failed while this node stayed linked: other nodes' sockets missed what it
    carried (its own got it). Every socket of every other node is told to fetch; raises if
    this notice cannot be published either (the manager then keeps it owed)."""
    notice = ServerResync(reason="cluster publish failed").model_dump(mode="json")
    for namespace in Namespace:
        await manager.emit_elsewhere(namespace.value, "server:resync", notice)


async def _socket_counts(app: web.Application) -> AsyncIterator[None]:
    """Per-namespace socket counts (is this user on `/chat` anywhere?), for notifications."""
    runtime = app[RUNTIME]
    store = runtime.presence.store if runtime.presence is not None else None
    counts = SocketCounts(
        runtime.redis,
        runtime.settings.redis_prefix,
        runtime.node_id,
        # A node's sockets count while presence's heartbeat says the node is alive.
        alive_key=store._alive_key if isinstance(store, RedisPresence) else None,
    )
    runtime.socket_counts = counts
    yield
    with contextlib.suppress(Exception):
        await counts.forget_node()
    runtime.socket_counts = None


async def _publish_stream(app: web.Application) -> AsyncIterator[None]:
    """Consume the Redis publish stream, when Redis is configured and intake is enabled."""
    runtime = app[RUNTIME]
    if runtime.redis is None or not runtime.settings.publish_stream_enabled:
        yield
        return
    consumer = PublishStreamConsumer(runtime, runtime.redis, runtime.node_id)
    task = asyncio.create_task(consumer.run(), name="publish-stream")
    yield
    consumer.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=consumer.block_ms / 1000 + 2)
    await _stop(task, app[RUNTIME].shutdown)


async def _notification_retention(app: web.Application) -> AsyncIterator[None]:
    """Prune notifications older than the retention period, periodically."""
    runtime = app[RUNTIME]
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                pruned = await notification_ops.prune(runtime)
                if pruned:
                    log.info("old notifications pruned", extra={"count": pruned})
            except Exception as exc:
                log.warning("notification pruning failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), runtime.settings.notification_prune_interval_seconds
                )

    task = asyncio.create_task(loop(), name="notification-retention")
    yield
    stopping.set()
    await _stop(task, app[RUNTIME].shutdown)


async def _stop(task: asyncio.Task[None], budget: ShutdownBudget) -> None:
    """Cancel a background task and wait for it, within what is left of the grace.

    On Python < 3.12 a library awaiting through `asyncio.wait_for` (redis-py 8 does) can
    swallow the cancellation; the loops above also watch a stop flag for that reason.
    """
    task.cancel()
    timeout = budget.seconds_left(at_most=BACKGROUND_STOP_SECONDS)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("background task %s did not stop within %.2fs", task.get_name(), timeout)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("background task %s failed: %r", task.get_name(), task.exception())


async def _stripe(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    runtime._stripe = StripeGateway(runtime.settings)
    yield
    await delivery.drain_background(runtime, runtime.shutdown.seconds_left(at_most=5.0))
    await runtime._stripe.close()


async def _outbox_publisher(app: web.Application) -> AsyncIterator[None]:
    """Deliver live events whose request died between commit and emit."""
    task = asyncio.create_task(delivery.run_publisher(app[RUNTIME]))
    yield
    await _stop(task, app[RUNTIME].shutdown)


async def _broadcast_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Write the subscribers' copies of paid broadcasts whose sender died before it did."""
    task = asyncio.create_task(broadcasts.run_sweeper(app[RUNTIME]))
    yield
    await _stop(task, app[RUNTIME].shutdown)


async def _typing_indicators(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    runtime._typing = TypingIndicators(runtime)
    yield
    await runtime._typing.close()
    runtime._typing = None


async def _media_store(app: web.Application) -> AsyncIterator[None]:
    """The configured media backend, open for the server's lifetime."""
    runtime = app[RUNTIME]
    async with open_store(runtime.settings) as media_store:
        runtime._media_store = media_store
        yield
    runtime._media_store = None


async def _media_cleanup(app: web.Application) -> AsyncIterator[None]:
    """Remove pending uploads nobody completed within a day, periodically."""
    runtime = app[RUNTIME]
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                await media_cleanup.remove_abandoned(runtime)
            except Exception as exc:
                log.warning("media cleanup failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stopping.wait(), runtime.settings.media_cleanup_interval_seconds
                )

    task = asyncio.create_task(loop(), name="media-cleanup")
    yield
    stopping.set()
    await _stop(task, app[RUNTIME].shutdown)


async def _drain(app: web.Application) -> None:
    """Tell sockets, stop taking work, let what is in flight be answered, close the sockets.

    `server:shutdown` goes out at once, and from then on every new event is answered
    `unavailable` (nothing stored, so the client resends elsewhere with the same
    `client_id`). What is still running when the wait ends is cancelled before the
    transports close: it rolls back rather than committing a send whose ack could no longer
    arrive. Then every transport closes as a lost connection does (no Engine.IO CLOSE, which
    python-socketio's client takes as final), so every client reconnects by itself, and
    long-polls are answered. The whole exit, this and the closing of every resource after
    it, stays within `shutdown_grace_seconds`.
    """
    runtime = app[RUNTIME]
    sio = app[SIO]
    budget = runtime.shutdown
    budget.start()
    runtime.draining = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    notice = ServerShutdown(reason="server shutting down", reconnect=True)
    for namespace in Namespace:
        with contextlib.suppress(Exception):
            await runtime.emitter.to_local_sockets(namespace, "server:shutdown", notice)
    answered = await runtime.inflight.wait_idle(budget.drain_seconds_left())
    cancelled = 0 if answered else runtime.inflight.cancel_all()
    try:
        await sio.eio.drain(budget.drain_seconds_left())
    except Exception:
        log.exception("draining the sockets failed")
    log.info(
        "sockets drained",
        extra={"seconds": round(loop.time() - started, 3), "cancelled_in_flight": cancelled},
    )
