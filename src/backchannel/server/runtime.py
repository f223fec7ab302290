"""What domain operations need from the running server, in one typed bundle."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backchannel.errors import Unavailable
from backchannel.server.proxies import Network
from backchannel.server.shutdown import InFlight, ShutdownBudget

if TYPE_CHECKING:
    import aiohttp

    from backchannel.domain.filters import FilterRules
    from backchannel.domain.presence import PresenceTracker
    from backchannel.domain.stripe_gateway import StripeGateway
    from backchannel.domain.tokens import TokenService
    from backchannel.domain.typing_indicators import TypingIndicators
    from backchannel.domain.webhook_events import WebhookHub
    from backchannel.media.links import MediaLinks
    from backchannel.media.store import MediaStore
    from backchannel.persistence.database import Database
    from backchannel.persistence.message_appender import MessageAppender
    from backchannel.push.providers import PushProviders
    from backchannel.rooms.emitter import Emitter
    from backchannel.rooms.socket_counts import SocketCounts
    from backchannel.server.block_cache import BlockCache
    from backchannel.server.mailer import Mailer
    from backchannel.server.metrics import Metrics
    from backchannel.server.push_worker import PushWorker
    from backchannel.server.ratelimit import RateLimiter
    from backchannel.server.redis_clients import RedisClient
    from backchannel.server.revocations import Revocations
    from backchannel.server.settings import Settings


@dataclass
class Runtime:
    """Settings plus the resources opened at start-up; built by `create_app`."""

    settings: Settings
    metrics: Metrics
    emitter: Emitter
    media_links: MediaLinks
    inflight: InFlight = field(default_factory=InFlight)
    draining: bool = False
    shutdown: ShutdownBudget = field(default_factory=lambda: ShutdownBudget(0.0))
    node_id: str = ""
    trusted_proxies: tuple[Network, ...] = ()
    _db: Database | None = None
    _appender: MessageAppender | None = None
    _tokens: TokenService | None = None
    redis: RedisClient | None = None
    http: aiohttp.ClientSession | None = None
    _limiter: RateLimiter | None = None
    _stripe: StripeGateway | None = None
    # Post-commit deliveries running in the background (kept so they are not collected).
    background: set[asyncio.Task[None]] = field(default_factory=set)
    presence: PresenceTracker | None = None
    socket_counts: SocketCounts | None = None
    _typing: TypingIndicators | None = None
    _revocations: Revocations | None = None
    _mailer: Mailer | None = None
    _blocks: BlockCache | None = None
    # This node's push queue worker (`server.push_worker`), while the app runs.
    push_worker: PushWorker | None = None
    # The content filters as last read on this node (`domain.screening`).
    filter_rules: FilterRules | None = None
    filter_rules_read_at: float = 0.0
    # (conversation, sender) -> until when a free `message:send` verdict holds (`dm_rules`).
    dm_verdicts: dict[tuple[int, str], float] = field(default_factory=dict)
    # Which event types have webhook endpoints, and the delivery worker's wake-up (#17).
    webhooks: WebhookHub | None = None

    # Push providers (#17): how a push is sent (`server/push_providers.py` opens them).
    _push: PushProviders | None = None

    @property
    def push(self) -> PushProviders:
        """The push providers (Web Push, FCM, APNs); present once the app has started."""
        if self._push is None:
            raise Unavailable("server not ready")
        return self._push

    @property
    def blocks(self) -> BlockCache:
        """Who blocks whom, cached on this node; present once the app has started."""
        if self._blocks is None:
            raise Unavailable("server not ready")
        return self._blocks

    @property
    def mailer(self) -> Mailer:
        """The outgoing mail queue's sender; present once the database is open."""
        if self._mailer is None:
            raise Unavailable("server not ready")
        return self._mailer

    @property
    def revocations(self) -> Revocations:
        """Ended login sessions (their tokens are refused); present once the app has started."""
        if self._revocations is None:
            raise Unavailable("server not ready")
        return self._revocations

    _media_store: MediaStore | None = None

    @property
    def media_store(self) -> MediaStore:
        """Where media bytes live; present once the app has started."""
        if self._media_store is None:
            raise Unavailable("server not ready")
        return self._media_store

    @property
    def limiter(self) -> RateLimiter:
        """Rate limits: in Redis when configured, else in this process."""
        if self._limiter is None:
            raise Unavailable("server not ready")
        return self._limiter

    @property
    def typing(self) -> TypingIndicators:
        """This node's typing indicators; present once the app has started."""
        if self._typing is None:
            raise Unavailable("server not ready")
        return self._typing

    @property
    def has_database(self) -> bool:
        """Whether start-up has opened the database."""
        return self._db is not None

    @property
    def db(self) -> Database:
        """The database; `Unavailable` before start-up has opened it."""
        if self._db is None:
            raise Unavailable("database not ready")
        return self._db

    @property
    def appender(self) -> MessageAppender:
        """`message:send`'s writer (group commit); present once the database is open."""
        if self._appender is None:
            raise Unavailable("database not ready")
        return self._appender

    @property
    def stripe(self) -> StripeGateway:
        """Outgoing Stripe calls; present once the app has started."""
        if self._stripe is None:
            raise Unavailable("server not ready")
        return self._stripe

    @property
    def tokens(self) -> TokenService:
        """The token service; present once the app has started."""
        if self._tokens is None:
            raise Unavailable("server not ready")
        return self._tokens
