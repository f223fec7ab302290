"""Opening the push providers (#17) for the app (a `cleanup_ctx`) and for the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from backchannel.push.messages import Outcome
from backchannel.push.providers import PushConfig, PushProviders, SendObserver, open_providers
from backchannel.server.keys import RUNTIME
from backchannel.server.metrics import Metrics
from backchannel.server.settings import Settings


def push_config(settings: Settings) -> PushConfig:
    """The providers' view of the settings."""
    vapid = settings.vapid_private_key
    fcm = settings.fcm_credentials
    return PushConfig(
        vapid_private_key=vapid.get_secret_value() if vapid is not None else None,
        vapid_subject=settings.vapid_subject,
        webpush_ttl=settings.webpush_ttl_seconds,
        fcm_credentials=fcm.get_secret_value() if fcm is not None else None,
        fcm_base_url=settings.fcm_base_url,
        apns_key_file=str(settings.apns_key_file) if settings.apns_key_file else None,
        apns_key_id=settings.apns_key_id,
        apns_team_id=settings.apns_team_id,
        apns_topic=settings.apns_topic,
        apns_sandbox=settings.apns_sandbox,
        apns_base_url=settings.apns_base_url,
        timeout=settings.push_timeout_seconds,
    )


def recorder(metrics: Metrics) -> SendObserver:
    """`PushProviders.send`'s observer: deliveries by provider/outcome and latency."""

    def observe(provider: str, outcome: Outcome, seconds: float) -> None:
        metrics.push_deliveries.labels(provider, outcome.value).inc()
        metrics.push_latency.labels(provider).observe(seconds)

    return observe


async def open_for(
    settings: Settings, http: aiohttp.ClientSession, metrics: Metrics | None = None
) -> PushProviders:
    """The configured providers, recording metrics when given some."""
    observe = recorder(metrics) if metrics is not None else None
    return await open_providers(push_config(settings), http, observe=observe)


async def push_providers(app: web.Application) -> AsyncIterator[None]:
    """Open the providers on the app's HTTP session; close them on shutdown."""
    runtime = app[RUNTIME]
    assert runtime.http is not None, "the HTTP client opens first"
    providers = await open_for(runtime.settings, runtime.http, runtime.metrics)
    runtime._push = providers
    yield
    runtime._push = None
    await providers.close()
