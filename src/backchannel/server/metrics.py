"""Prometheus metrics, on a registry per app so tests can build many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters, gauges and histograms Backchannel exports on `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
