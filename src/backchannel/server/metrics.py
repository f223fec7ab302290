"""Prometheus metrics, on a registry per app so tests can build many apps in one process.

Most move as things happen; the database pool is read at scrape time, and what lives in other
systems (the outbox table, the Redis publish stream, Redis itself) is sampled by `sample` when
`/metrics` is asked, each bounded by a short timeout so a scrape never hangs on a dead service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from backchannel.persistence import outbox, push_queue, webhooks
from backchannel.persistence.database import Database

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

SAMPLE_TIMEOUT_SECONDS = 2.0


class PoolCollector:
    """The asyncpg pool at scrape time: open connections, the most allowed, in use, waiting."""

    def __init__(self, database: Callable[[], Database | None]) -> None:
        self._database = database

    def collect(self) -> Iterable[Metric]:
        """Read at scrape time (nothing while the pool is closed)."""
        db = self._database()
        if db is None:
            return
        pool = db.pool
        size, idle = pool.get_size(), pool.get_idle_size()
        for name, text, value in (
            ("size", "Open connections in the database pool", size),
            ("max_size", "Most connections the database pool may open", pool.get_max_size()),
            ("in_use", "Pool connections lent out to a unit of work", size - idle),
            ("waiting", "Units of work waiting for a free pool connection", db.waiting),
        ):
            yield GaugeMetricFamily(f"backchannel_db_pool_{name}", text, value=value)


class Metrics:
    """The counters, gauges and histograms Backchannel exports on `/metrics`."""

    def __init__(self, *, redis: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Redis's gauges are exported only when REDIS_URL is set: a single node has no Redis
        # to be down, and `backchannel_redis_up 0` would page someone for nothing.
        with_redis = self.registry if redis else None
        # The defaults a Prometheus client exports: CPU, memory, open fds, start time; GC runs;
        # the Python version. Ours are per-app registries, so they are registered on each.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        if GC_COLLECTOR is not None:
            GCCollector(registry=self.registry)
        self.connections = Gauge(
            "backchannel_socket_connections",
            "Open Socket.IO connections on this node",
            ["namespace"],
            registry=self.registry,
        )
        self.connects = Counter(
            "backchannel_socket_connects_total",
            "Socket.IO connect attempts by outcome",
            ["namespace", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "backchannel_socket_events_total",
            "Socket.IO events handled, by name and outcome (ok or an error code)",
            ["namespace", "event", "outcome"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "backchannel_socket_ack_seconds",
            "Time from receiving an event to its ack",
            ["namespace", "event"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.presence_changes = Counter(
            "backchannel_presence_changes_total",
            "Presence changes announced by this node, by new status",
            ["status"],
            registry=self.registry,
        )
        self.stripe_events = Counter(
            "backchannel_stripe_events_total",
            "Verified Stripe webhook events, by type (handled ones; others as 'other') and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.outbox_redelivered = Counter(
            "backchannel_outbox_redelivered_total",
            "Live events delivered by the background outbox publisher (missed after commit)",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "backchannel_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.moderation_hook_latency = Histogram(
            "backchannel_moderation_hook_seconds",
            "Time a moderation hook call took, by outcome (allow, reject, replace, failed)",
            ["outcome"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5),
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "backchannel_http_request_seconds",
            "HTTP request duration by route",
            ["method", "route"],
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "backchannel_rate_limited_total",
            "Requests refused by a rate limit, by scope (connect, event, http, login)",
            ["scope"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "backchannel_notifications_total",
            "Notifications published: stored, or deduplicated (a repeated dedupe_key)",
            ["outcome"],
            registry=self.registry,
        )
        self.notification_receipts = Counter(
            "backchannel_notification_receipts_total",
            "Notification receipts stored (one per recipient)",
            registry=self.registry,
        )
        self.stream_entries = Counter(
            "backchannel_publish_stream_entries_total",
            "Publish stream entries handled: published, dead (dead-lettered) or retry",
            ["outcome"],
            registry=self.registry,
        )
        # Push providers (#17): recorded by `PushProviders.send`
        self.push_deliveries = Counter(
            "backchannel_push_deliveries_total",
            "Pushes sent, by provider and outcome (delivered, gone, retry, failed)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.push_latency = Histogram(
            "backchannel_push_latency_seconds",
            "Time one push took at its provider",
            ["provider"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

        self.slow_consumers = Counter(
            "backchannel_slow_consumer_disconnects_total",
            "Sockets disconnected for holding more than BACKCHANNEL_SOCKET_SEND_BUFFER_BYTES",
            registry=self.registry,
        )
        self.breaker_trips = Counter(
            "backchannel_ratelimit_breaker_trips_total",
            "Times the rate limiter's Redis breaker opened (limits fell back to node memory)",
            registry=self.registry,
        )

        self.redis_up = Gauge(
            "backchannel_redis_up",
            "1 when Redis answered a PING at the last scrape",
            registry=with_redis,
        )
        self.outbox_backlog = Gauge(
            "backchannel_outbox_backlog",
            "Outbox rows committed but not yet delivered to sockets",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "backchannel_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row (0 when none)",
            registry=self.registry,
        )
        # -- hardening (#13) --
        self.outbox_dead = Gauge(
            "backchannel_outbox_dead",
            "Outbox rows dead-lettered after BACKCHANNEL_OUTBOX_MAX_ATTEMPTS failed publishes "
            "(`backchannel outbox list --dead`)",
            registry=self.registry,
        )
        self.outbox_publish_failures = Counter(
            "backchannel_outbox_publish_failures_total",
            "Outbox row publishes that failed, by outcome (retry: kept pending; dead: given up)",
            ["outcome"],
            registry=self.registry,
        )
        self.sockets_swept = Counter(
            "backchannel_sockets_swept_total",
            "Sockets whose transport was gone without a disconnect, dropped by the sweep",
            registry=self.registry,
        )
        self.stream_lag = Gauge(
            "backchannel_publish_stream_lag",
            "Publish stream entries not yet read by the cluster's consumer group",
            registry=with_redis,
        )
        self.stream_pending = Gauge(
            "backchannel_publish_stream_pending",
            "Publish stream entries read by a node but not yet acknowledged",
            registry=with_redis,
        )
        self.stream_dead_letters = Gauge(
            "backchannel_publish_stream_dead_letters",
            "Entries in the publish stream's dead-letter stream",
            registry=with_redis,
        )
        # The push queue (#17): sampled at scrape time like the outbox; outcomes as they happen.
        self.push_queue_depth = Gauge(
            "backchannel_push_queue_depth",
            "Push queue rows by state: pending (to send, now or at a retry or digest's end) "
            "or held (by quiet hours)",
            ["state"],
            registry=self.registry,
        )
        self.push_queue_oldest_age = Gauge(
            "backchannel_push_queue_oldest_age_seconds",
            "How long the oldest due, unheld push queue row has waited (0 when none)",
            registry=self.registry,
        )
        self.push_queue_outcomes = Counter(
            "backchannel_push_queue_outcomes_total",
            "What the push queue worker did: per row sent, retried, gave_up, held, summarised, "
            "skipped_online, skipped_muted, dropped_read; per device device_<provider outcome>",
            ["outcome"],
            registry=self.registry,
        )
        # Outbound webhooks (#17)
        self.webhook_queue_depth = Gauge(
            "backchannel_webhook_queue_depth",
            "Webhook deliveries pending (not yet delivered, not failed)",
            registry=self.registry,
        )
        self.webhook_oldest_pending_age = Gauge(
            "backchannel_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none)",
            registry=self.registry,
        )
        self.webhook_subscribed_types = Gauge(
            "backchannel_webhook_subscribed_types",
            "Event types some enabled webhook endpoint wants, as this node last read them "
            "('*' counts as one)",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "backchannel_webhook_deliveries_total",
            "Webhook delivery attempts by endpoint id and outcome "
            "(delivered, retry, failed, disabled)",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "backchannel_webhook_delivery_seconds",
            "Time a webhook delivery attempt took, by outcome",
            ["outcome"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.sample_failures = Counter(
            "backchannel_metrics_sample_failures_total",
            "Scrape-time samples that failed or timed out, by source (the gauge keeps its value)",
            ["source"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


async def sample(rt: Runtime) -> None:
    """Refresh the gauges read from the database and Redis, each within a short timeout."""
    await asyncio.gather(_outbox(rt), _push_queue(rt), _webhooks(rt), _redis(rt))


async def _outbox(rt: Runtime) -> None:
    if not rt.has_database:
        return
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS), rt.db.connection() as conn:
            rows, age = await outbox.backlog(conn)
            dead = await outbox.dead_count(conn)
    except Exception as exc:
        rt.metrics.sample_failures.labels("outbox").inc()
        log.debug("outbox sample failed: %r", exc)
        return
    rt.metrics.outbox_backlog.set(rows)
    rt.metrics.outbox_oldest_age.set(age)
    rt.metrics.outbox_dead.set(dead)


async def _push_queue(rt: Runtime) -> None:
    if not rt.has_database:
        return
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS), rt.db.connection() as conn:
            pending, held, age = await push_queue.backlog(conn)
    except Exception as exc:
        rt.metrics.sample_failures.labels("push_queue").inc()
        log.debug("push queue sample failed: %r", exc)
        return
    rt.metrics.push_queue_depth.labels("pending").set(pending)
    rt.metrics.push_queue_depth.labels("held").set(held)
    rt.metrics.push_queue_oldest_age.set(age)


async def _webhooks(rt: Runtime) -> None:
    if not rt.has_database:
        return
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS), rt.db.connection() as conn:
            pending, age = await webhooks.backlog(conn)
    except Exception as exc:
        rt.metrics.sample_failures.labels("webhooks").inc()
        log.debug("webhook sample failed: %r", exc)
        return
    rt.metrics.webhook_queue_depth.set(pending)
    rt.metrics.webhook_oldest_pending_age.set(age)


async def _redis(rt: Runtime) -> None:
    if rt.redis is None:
        return
    from backchannel.server.publish_stream import GROUP, dead_key, stream_key

    prefix = rt.settings.redis_prefix
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS):
            await rt.redis.ping()
    except Exception as exc:
        rt.metrics.redis_up.set(0)
        rt.metrics.sample_failures.labels("redis").inc()
        log.debug("redis sample failed: %r", exc)
        return
    rt.metrics.redis_up.set(1)
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS):
            dead = await rt.redis.xlen(dead_key(prefix))
            groups: list[dict[Any, Any]] = (
                await rt.redis.xinfo_groups(stream_key(prefix))
                if await rt.redis.exists(stream_key(prefix))
                else []
            )
    except Exception as exc:
        rt.metrics.sample_failures.labels("publish_stream").inc()
        log.debug("publish stream sample failed: %r", exc)
        return
    rt.metrics.stream_dead_letters.set(dead)
    ours = next((g for g in groups if _text(g.get("name")) == GROUP), None)
    # `lag` is Redis 7's count of entries the group has not read; None when it cannot tell.
    lag = ours.get("lag") if ours is not None else None
    if ours is None:
        rt.metrics.stream_lag.set(0)
    else:
        rt.metrics.stream_lag.set(float(lag) if lag is not None else float("nan"))
    rt.metrics.stream_pending.set(float(ours.get("pending", 0)) if ours is not None else 0.0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
