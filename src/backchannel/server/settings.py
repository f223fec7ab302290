"""Every setting Backchannel reads, from the environment, validated at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# The push services browsers subscribe to (Chrome/Edge via FCM, Firefox, Safari, Windows): a
# subscription is a URL the server will POST to, so in production it may name only these.
BROWSER_PUSH_SERVICES = (
    "fcm.googleapis.com",
    "android.googleapis.com",
    ".push.services.mozilla.com",
    ".push.apple.com",
    ".notify.windows.com",
)
PLACEHOLDER_SECRETS = {"", "secret", "change-me", "changeme", "dev", "test", "password"}
SECRET_FIELDS = {
    "jwt_secret",
    "stripe_secret_key",
    "stripe_webhook_secret",
    "moderation_hook_secret",
    "metrics_token",
    "vapid_private_key",
    "fcm_credentials",
}


class Settings(BaseSettings):
    """Backchannel's configuration; every name below is `BACKCHANNEL_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="BACKCHANNEL_", extra="ignore")

    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "BACKCHANNEL_DATABASE_URL"),
        description="Postgres DSN; unset starts an embedded Postgres in the data folder (dev only)",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "BACKCHANNEL_REDIS_URL"),
        description="Redis URL; unset runs single-node with in-memory rooms and limits",
    )
    data_dir: Path = Field(Path("./var"), description="Folder for local state")
    embedded_pg_dir: Path | None = Field(
        None, description="Embedded Postgres data folder (default: <data_dir>/pg)"
    )
    host: str = Field("0.0.0.0", description="Interface to listen on")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on")
    env: Literal["dev", "production"] = Field("dev", description="dev or production")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")

    jwt_secret: SecretStr | None = Field(
        None, description="HS256 secret; generated into the data folder in dev mode"
    )
    jwt_public_key: str | None = Field(
        None, description="PEM public key (or a path to one) for RS256/ES256 tokens"
    )
    jwt_jwks_url: str | None = Field(
        None, description="JWKS URL (or file path) for externally minted tokens"
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` when set")
    jwt_audience: str | None = Field(None, description="Required `aud` when set")
    jwt_role_claim: str | None = Field(
        None,
        description="Claim (name or dotted path) whose role is applied on every connect, "
        "e.g. app_metadata.role; unset: a `role` claim only sets a new user's role",
    )
    jwt_email_claim: str = Field(
        "email", description="Claim (name or dotted path) holding an external user's email"
    )
    jwt_require_type: bool | None = Field(
        None,
        description="Require `type: access`; unset: required of our own tokens only, "
        "not of JWKS/public-key tokens",
    )
    smtp_url: str | None = Field(
        None,
        description="SMTP server for email codes: smtp://[user:pass@]host[:port] "
        "(STARTTLS when offered) or smtps:// (TLS); unset in dev: codes go to the log",
    )
    email_from: str = Field(
        "Backchannel <no-reply@localhost>", description="From address of the mail we send"
    )
    erase_grace_days: int = Field(
        30, ge=0, le=3650, description="Days a deleted account waits before erasure (0: at once)"
    )
    creator_signup: Literal["open", "approval"] | None = Field(
        None,
        description="open: anyone registers as a creator; approval: an admin approves "
        "(unset: open in dev, approval in production)",
    )
    access_token_ttl_seconds: int = Field(900, ge=30, description="Access token lifetime")
    refresh_token_ttl_days: int = Field(30, ge=1, description="Refresh token lifetime")

    stripe_secret_key: SecretStr | None = Field(None, description="Stripe secret API key")
    stripe_webhook_secret: SecretStr | None = Field(None, description="Stripe endpoint secret")
    stripe_api_base: str | None = Field(None, description="Stripe API base URL (tests: a fake)")
    public_url: str = Field(
        "http://localhost:8080", description="Public base URL, for Checkout return links"
    )
    stripe_webhook_tolerance_seconds: int = Field(
        300, ge=1, description="Oldest Stripe signature timestamp accepted, in seconds"
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, description="How often unsent live events (outbox) are retried"
    )
    platform_fee_percent: int = Field(20, ge=0, le=100, description="Platform fee per sale")
    earnings_hold_days: int = Field(
        7, ge=0, le=365, description="Days a sale's earnings stay pending before payout"
    )
    dev_topup: bool = Field(False, description="Enable POST /dev/wallet/topup (never in prod)")
    cors_origins: str = Field(
        "",
        description="Comma-separated allowed CORS origins; dev mode also allows "
        "http://localhost:* and http://127.0.0.1:* on /api/v1",
    )

    metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics requires `Authorization: Bearer <token>` "
        "(Prometheus: `authorization: {credentials: ...}`)",
    )

    db_pool_min_size: int = Field(2, ge=0, description="asyncpg pool minimum size")
    db_pool_max_size: int = Field(10, ge=1, description="asyncpg pool maximum size")
    db_statement_timeout_ms: int = Field(5000, ge=100, description="Per-statement timeout")
    db_connect_timeout_seconds: float = Field(
        30.0, gt=0, description="How long start-up waits for the database"
    )
    migrate_on_start: bool = Field(True, description="Apply migrations when serving")

    redis_prefix: str = Field("backchannel", description="Prefix of every Redis key and channel")
    msgpack: bool = Field(False, description="Use the msgpack Socket.IO serializer")
    ws_compression: bool = Field(False, description="Accept permessage-deflate (~130 kB/socket)")
    fast_fanout: bool = Field(
        True, description="Write each broadcast frame once to idle local websockets"
    )
    lean_websockets: bool = Field(
        True, description="Websockets leave aiohttp once open (~6 kB, not ~33 kB, per idle socket)"
    )
    max_http_body_bytes: int = Field(1_048_576, ge=1024, description="Largest HTTP request body")
    max_socket_message_bytes: int = Field(
        1_000_000, ge=1024, description="Largest Socket.IO message"
    )
    max_ws_fragments: int = Field(
        1024, ge=1, description="Most websocket frames one fragmented message may arrive in"
    )
    connect_deadline_seconds: float = Field(
        10.0,
        gt=0,
        description="An Engine.IO transport that has connected no namespace by then is closed",
    )
    max_unauthenticated_per_ip: int = Field(
        50, ge=1, description="Open Engine.IO transports per client IP not yet in a namespace"
    )
    ping_interval_seconds: float = Field(25.0, gt=0, description="Engine.IO ping interval")
    ping_timeout_seconds: float = Field(20.0, gt=0, description="Engine.IO ping timeout")
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="SIGTERM to exit, as a whole: in-flight acks, requests and every close",
    )

    message_rate_limit: str = Field(
        "20/10s:10", description="message:send per user: COUNT/SECONDSs[:BURST]"
    )
    checkout_rate_limit: str = Field(
        "20/60s:10", description="Stripe checkouts started per user: COUNT/SECONDSs[:BURST]"
    )
    broadcast_rate_limit: str = Field(
        "10/60s:5", description="ppv:broadcast per creator: COUNT/SECONDSs[:BURST]"
    )
    group_max_members: int = Field(1000, ge=2, description="Largest group conversation")
    fan_to_fan_dms: bool = Field(
        False, description="Whether fans may open direct conversations with other fans"
    )
    creator_dm_policy_default: Literal["everyone", "subscribers", "paid", "nobody"] = Field(
        "subscribers",
        description="The dm_policy of a creator who has not set one (PATCH /profiles/me)",
    )
    message_edit_window_seconds: int = Field(
        900, ge=0, description="How long after sending its sender may edit a message"
    )
    moderation_hook_url: str | None = Field(
        None, description="Every new message is POSTed here (signed) before it is stored"
    )
    moderation_hook_secret: SecretStr | None = Field(
        None, description="Signs moderation hook calls (Backchannel-Signature: t=..,v1=..)"
    )
    moderation_hook_timeout_ms: int = Field(
        1500, ge=1, le=60_000, description="Deadline of one moderation hook call"
    )
    moderation_hook_failure: Literal["allow", "reject"] = Field(
        "allow", description="What a send does when the moderation hook is late or down"
    )
    typing_timeout_seconds: float = Field(
        6.0, gt=0, description="A typing:start expires this long after the last one"
    )
    typing_throttle_seconds: float = Field(
        2.0, ge=0, description="Repeated typing:start broadcast at most once per this interval"
    )

    notification_retention_days: int = Field(
        90, ge=1, description="Notifications older than this many days are pruned"
    )
    notification_prune_interval_seconds: float = Field(
        3600.0, gt=0, description="How often old notifications are pruned"
    )
    notification_unread_push_max: int = Field(
        1000,
        ge=0,
        description="Largest fan-out that pushes notifications:unread to each recipient",
    )

    # -- push queue (#17: when a push goes out, quiet hours, digests) --
    push_queue_poll_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often the push queue worker looks without a wake-up"
    )
    push_queue_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="How long a node holds claimed push queue rows before another may retake them",
    )
    push_queue_batch: int = Field(
        100, ge=1, le=10_000, description="Push queue rows claimed per worker round"
    )
    push_max_attempts: int = Field(
        6, ge=1, le=50, description="Attempts per device before a retryable push is given up"
    )
    push_retry_base_seconds: float = Field(
        2.0, gt=0, le=3600, description="First retry delay of a push (doubling, with jitter)"
    )
    push_retry_max_seconds: float = Field(
        900.0, gt=0, le=86_400, description="Longest delay between two attempts of a push"
    )

    @model_validator(mode="after")
    def _push_lease_outlasts_a_send(self) -> Settings:
        # A claimed row must be sent before its lease lapses, or a second node may send it.
        if self.push_queue_lease_seconds <= 2 * self.push_timeout_seconds + 1:
            raise ValueError(
                "BACKCHANNEL_PUSH_QUEUE_LEASE_SECONDS must exceed "
                "2 * BACKCHANNEL_PUSH_TIMEOUT_SECONDS + 1"
            )
        return self

    publish_stream_enabled: bool = Field(
        True, description="Consume the Redis publish stream (only when REDIS_URL is set)"
    )
    publish_stream_trusted: bool = Field(
        False, description="Accept stream entries that name no API key (publisher `stream`)"
    )
    publish_stream_claim_idle_seconds: float = Field(
        30.0, gt=0, description="Reclaim stream entries pending this long on another consumer"
    )
    publish_stream_batch: int = Field(100, ge=1, le=1000, description="Stream entries per read")
    publish_stream_max_deliveries: int = Field(
        5, ge=1, description="Deliveries of one stream entry before it is dead-lettered"
    )

    presence_offline_debounce_seconds: float = Field(
        5.0, ge=0, description="A user goes offline this long after their last socket closes"
    )
    presence_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a node refreshes its presence heartbeat in Redis"
    )
    presence_node_ttl_seconds: float = Field(
        15.0, gt=0, description="A node silent this long is dead; its users go offline"
    )
    presence_set_rate_limit: str = Field(
        "30/60s:10", description="presence:set per user: COUNT/SECONDSs[:BURST]"
    )
    presence_sweep_seconds: float = Field(
        1.0, gt=0, description="How often due offlines and dead nodes are looked for"
    )

    connect_rate_limit: str = Field(
        "300/60s:100", description="Socket.IO namespace connects per client IP"
    )
    socket_event_rate_limit: str = Field(
        "100/10s:50", description="Events per socket, any event (each socket lives on one node)"
    )
    http_ip_rate_limit: str = Field("1200/60s:300", description="HTTP requests per client IP")
    http_user_rate_limit: str = Field(
        "600/60s:200", description="HTTP requests per authenticated user"
    )
    login_failures_per_account: str = Field(
        "20/900s", description="Failed logins allowed per account (from any IP)"
    )
    login_failures_per_account_ip: str = Field(
        "5/900s", description="Failed logins allowed per (account, client IP)"
    )
    login_failures_per_ip: str = Field(
        "100/900s",
        description="Failed logins allowed per client IP, any account; never refuses an "
        "account that has not failed from that IP",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated proxy IPs/CIDRs whose X-Forwarded-For names the client",
    )
    redis_ping_interval_seconds: float = Field(
        5.0, gt=0, description="Idle cluster link check; silent Redis is down after twice this"
    )
    redis_retry_max_seconds: float = Field(
        5.0, gt=0, description="Longest wait between Redis reconnect attempts"
    )
    redis_timeout_seconds: float = Field(5.0, gt=0, description="Redis connect and command timeout")
    cluster_routing: Literal["routed", "single"] = Field(
        "routed",
        description="routed: a node hears only the rooms its sockets are in; single: one "
        "channel every node hears (python-socketio's way)",
    )
    cluster_pubsub: Literal["auto", "sharded", "plain"] = Field(
        "auto",
        description="Redis pub/sub for routed traffic: sharded (SPUBLISH, Redis 7+), plain, or "
        "auto (sharded when the server supports it)",
    )

    media_store: Literal["local", "s3"] = Field(
        "local", description="Where uploaded media live: local (the data folder) or s3"
    )
    media_dir: Path | None = Field(
        None, description="Local media folder (default: <data_dir>/media)"
    )
    s3_bucket: str | None = Field(None, description="S3 bucket (BACKCHANNEL_MEDIA_STORE=s3)")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (R2, MinIO, Backblaze); unset: AWS"
    )
    s3_region: str | None = Field(None, description="S3 region")
    media_max_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Largest media upload, in bytes"
    )
    media_url_ttl_seconds: int = Field(
        600, ge=1, le=7 * 86400, description="Lifetime of the signed media links a viewer gets"
    )
    media_upload_ttl_seconds: int = Field(
        3600, ge=10, le=7 * 86400, description="Lifetime of a signed upload target"
    )
    media_base_url: str = Field(
        "", description="Prefix of Backchannel's media links (unset: paths relative to the server)"
    )
    media_pending_max_age_seconds: float = Field(
        86400.0, gt=0, description="Pending uploads never completed are removed after this long"
    )
    media_cleanup_interval_seconds: float = Field(
        3600.0, gt=0, description="How often abandoned pending uploads are looked for"
    )

    vapid_private_key: SecretStr | None = Field(
        None,
        description="Web Push VAPID private key: a P-256 key in PEM (dev: generated into "
        "<data_dir>/vapid_private_key.pem)",
    )
    vapid_subject: str = Field(
        "mailto:push@localhost", description="VAPID `sub` claim: a mailto: or https: contact"
    )
    push_max_devices: int = Field(20, ge=1, le=1000, description="Devices kept per user")
    webpush_endpoint_hosts: list[str] | None = Field(
        None,
        description="Hosts a Web Push endpoint may name (a leading dot admits subdomains); "
        "unset: the browsers' push services in production, any host in dev",
    )

    # Push providers (#17): how a push is sent (Web Push uses vapid_* above)
    webpush_ttl_seconds: int = Field(
        86400, ge=0, le=28 * 86400, description="Web Push TTL: how long a push service keeps it"
    )
    fcm_credentials: SecretStr | None = Field(
        None,
        description="FCM HTTP v1 service-account JSON: a path to it or its content (unset: no FCM)",
    )
    fcm_base_url: str = Field("https://fcm.googleapis.com", description="FCM API base URL")
    apns_key_file: Path | None = Field(
        None, description="APNs token-auth signing key (.p8 file; unset: no APNs)"
    )
    apns_key_id: str | None = Field(None, description="APNs key id (the JWT `kid`)")
    apns_team_id: str | None = Field(None, description="Apple developer team id (the JWT `iss`)")
    apns_topic: str | None = Field(None, description="APNs topic: the app's bundle id")
    apns_sandbox: bool = Field(False, description="Send to the APNs sandbox (development builds)")
    apns_base_url: str | None = Field(
        None, description="APNs base URL (unset: the sandbox or production host, per APNS_SANDBOX)"
    )
    push_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Timeout of one request to a push provider"
    )

    # Outbound webhooks (#17)
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="How long one webhook delivery attempt may take"
    )
    webhook_retry_base_seconds: float = Field(
        30.0, gt=0, description="First retry delay of a failed webhook delivery (then doubled)"
    )
    webhook_retry_max_delay_seconds: float = Field(
        6 * 3600.0, gt=0, description="Longest delay between two attempts of one delivery"
    )
    webhook_retry_window_seconds: float = Field(
        3 * 86400.0,
        gt=0,
        description="A delivery is retried for this long, then `failed`; an endpoint failing "
        "for this long is disabled",
    )
    webhook_lease_seconds: float = Field(
        30.0, gt=0, description="How long a node holds a delivery it is attempting"
    )
    webhook_poll_seconds: float = Field(
        1.0, gt=0, description="How often each node looks for due webhook deliveries"
    )
    webhook_types_refresh_seconds: float = Field(
        1.0, gt=0, description="How often a node re-reads which event types have endpoints"
    )
    webhook_concurrency: int = Field(
        8, ge=1, le=256, description="Webhook deliveries one node attempts at once"
    )
    webhook_retention_days: int = Field(
        30,
        ge=1,
        description="Webhook events and their delivery records are kept this long once "
        "nothing is pending",
    )

    # -- Slow consumers and bounded database use (#13 items 5 and 8) ---------------------
    socket_send_buffer_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        description="Per socket: queued packets plus unsent transport bytes past which the "
        "socket is disconnected (reason slow_consumer)",
    )
    db_acquire_timeout_seconds: float = Field(
        2.0, gt=0, description="Longest wait for a pooled database connection (then unavailable)"
    )
    db_write_alone_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Most of the pool that message writes waiting on a busy conversation's "
        "lock may hold at once (the rest queue)",
    )
    redis_breaker_timeout_seconds: float = Field(
        1.0,
        gt=0,
        description="Rate limits: a Redis call slower than this trips the breaker (limits then "
        "use this node's memory)",
    )
    redis_breaker_open_seconds: float = Field(
        2.0, gt=0, description="Rate limits: how long a tripped breaker skips Redis before a probe"
    )

    # -- The browser demo (issue #18): /demo, a page on the JavaScript client -----------------
    demo: bool = Field(
        False,
        description="Serve the browser demo at /demo outside dev mode too (dev mode always does)",
    )

    # -- hardening (#13: ghost sockets, outbox retries) ------------------------------------------
    socket_sweep_seconds: float = Field(
        30.0,
        gt=0,
        description="How often each node drops sockets whose transport is gone without a "
        "disconnect (socket counts, presence, rooms, timers)",
    )
    outbox_max_attempts: int = Field(
        10,
        ge=1,
        description="Failed publishes of one outbox row before it is dead-lettered "
        "(`backchannel outbox list --dead`)",
    )
    outbox_retry_base_seconds: float = Field(
        0.5, gt=0, description="First retry delay of an outbox row whose publish failed"
    )
    outbox_retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest retry delay of an outbox row (the backoff doubles)"
    )

    @field_validator(
        "message_rate_limit",
        "presence_set_rate_limit",
        "connect_rate_limit",
        "socket_event_rate_limit",
        "http_ip_rate_limit",
        "http_user_rate_limit",
        "login_failures_per_account",
        "login_failures_per_account_ip",
        "login_failures_per_ip",
    )
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from backchannel.server.ratelimit import Rate

        Rate.parse(value)
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        # `BACKCHANNEL_METRICS_TOKEN=` must not mean "an empty bearer token is the password".
        return None if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        from backchannel.server.proxies import parse_networks

        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _check_webhooks(self) -> Settings:
        # A lease shorter than an attempt would let a second node start the same delivery.
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds + 1:
            raise ValueError("webhook_lease_seconds must exceed webhook_timeout_seconds + 1")
        return self

    @model_validator(mode="after")
    def _check_presence(self) -> Settings:
        if self.presence_node_ttl_seconds <= self.presence_heartbeat_seconds:
            raise ValueError(
                "BACKCHANNEL_PRESENCE_NODE_TTL_SECONDS must exceed "
                "BACKCHANNEL_PRESENCE_HEARTBEAT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _check_media(self) -> Settings:
        if self.media_store == "s3" and not self.s3_bucket:
            raise ValueError("BACKCHANNEL_S3_BUCKET is required when BACKCHANNEL_MEDIA_STORE=s3")
        return self

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env == "production":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 32:
                raise ValueError(
                    "BACKCHANNEL_JWT_SECRET must be set to a random value of at least "
                    "32 characters in production"
                )
            if self.dev_topup:
                raise ValueError("BACKCHANNEL_DEV_TOPUP cannot be enabled in production")
            hook_secret = self.moderation_hook_secret
            if self.moderation_hook_url and (
                hook_secret is None or hook_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    "BACKCHANNEL_MODERATION_HOOK_SECRET must be set to a real secret in production "
                    "when BACKCHANNEL_MODERATION_HOOK_URL is"
                )
            if self.database_url is None:
                # The embedded Postgres is a newcomer's convenience: in production it would be
                # a database inside one container's data folder that nobody backs up.
                raise ValueError("DATABASE_URL is required in production")
        return self

    @property
    def embedded_pg_path(self) -> Path:
        """Where the embedded Postgres keeps its data."""
        return self.embedded_pg_dir or self.data_dir / "pg"

    @property
    def webpush_hosts(self) -> tuple[str, ...] | None:
        """Where Web Push endpoints may point (None: anywhere, dev only)."""
        if self.webpush_endpoint_hosts is not None:
            return tuple(host.lower() for host in self.webpush_endpoint_hosts)
        return BROWSER_PUSH_SERVICES if self.env == "production" else None

    @property
    def creator_signup_mode(self) -> Literal["open", "approval"]:
        """How creator sign-up works: the setting, else open in dev and approval in production."""
        if self.creator_signup is not None:
            return self.creator_signup
        return "approval" if self.env == "production" else "open"

    @property
    def media_path(self) -> Path:
        """Where the local media store keeps its files."""
        return self.media_dir or self.data_dir / "media"

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed CORS origins as a list."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def jwt_secret_value(self) -> str:
        """The HS256 secret; `ensure_jwt_secret` has filled it in dev mode."""
        if self.jwt_secret is None:
            raise RuntimeError("JWT secret not configured")
        return self.jwt_secret.get_secret_value()

    def redacted(self) -> dict[str, Any]:
        """The effective settings with secrets hidden, for `check-config`."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if name in SECRET_FIELDS:
                shown[name] = "***" if value else None
            elif name in {"database_url", "redis_url", "smtp_url"} and value:
                shown[name] = _redact_url(str(value))
            else:
                shown[name] = str(value) if isinstance(value, Path) else value
        return shown


def _redact_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def ensure_jwt_secret(settings: Settings) -> Settings:
    """In dev mode, load or create a persistent random JWT secret in the data folder."""
    if settings.jwt_secret is not None:
        return settings
    if settings.env == "production":
        raise ValueError("BACKCHANNEL_JWT_SECRET is required in production")
    secret = _load_or_create(settings.data_dir / "jwt_secret", lambda: secrets.token_urlsafe(48))
    return settings.model_copy(update={"jwt_secret": SecretStr(secret.strip())})


def _load_or_create(path: Path, make: Callable[[], str]) -> str:
    """The file's text, or `make()` written there first (owner-only) if it does not exist.

    Two nodes started together on one data folder must end up with the same secret: the new
    text is written whole to a temporary file and linked into place, so whoever links second
    reads the winner's complete file instead of failing or reading a half-written one.
    """
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        with contextlib.suppress(FileExistsError):  # another process linked first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text()


def ensure_vapid_key(settings: Settings) -> Settings:
    """In dev mode, load or create a persistent VAPID key in the data folder.

    In production an unset key leaves Web Push off rather than stopping the server.
    """
    if settings.vapid_private_key is not None:
        return settings
    if settings.env == "production":
        return settings  # no key, no Web Push: the key route answers `unavailable`
    pem = _load_or_create(settings.data_dir / "vapid_private_key.pem", _new_vapid_pem)
    return settings.model_copy(update={"vapid_private_key": SecretStr(pem)})


def _new_vapid_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def describe_validation_error(exc: ValidationError) -> str:
    """One line per wrong setting, naming its environment variable."""
    lines = []
    for err in exc.errors():
        loc = err.get("loc", ())
        name = str(loc[0]) if loc else ""
        if name.isupper():
            env_name = name
        elif name:
            env_name = f"BACKCHANNEL_{name.upper()}"
        else:
            env_name = "configuration"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"invalid setting {env_name}: {message}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (plus overrides)."""
    return Settings(**overrides)
