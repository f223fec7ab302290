"""The providers a node holds, and the one `send` the push queue calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from backchannel.persistence.devices import Device
from backchannel.push.messages import Outcome, PushMessage, PushResult

log = logging.getLogger(__name__)

PLATFORMS = ("webpush", "fcm", "apns")

# (provider, outcome, seconds) after every send: the server records it as metrics.
SendObserver = Callable[[str, Outcome, float], None]


@dataclass(frozen=True)
class PushConfig:
    """The settings the providers read (built from `Settings` by the server)."""

    vapid_private_key: str | None = None  # PEM (P-256); None = no Web Push
    vapid_subject: str = "mailto:admin@example.com"
    webpush_ttl: int = 86_400  # seconds a push service keeps an undelivered push
    fcm_credentials: str | None = None  # a path to, or the content of, a service-account JSON
    fcm_base_url: str = "https://fcm.googleapis.com"
    apns_key_file: str | None = None  # path to the .p8 signing key
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None  # the app's bundle id
    apns_sandbox: bool = False
    apns_base_url: str | None = None  # None: from apns_sandbox
    timeout: float = 10.0  # seconds per provider request


class PushProvider(Protocol):
    """One push service: sends one message to one device, never raising for its answers."""

    platform: str  # "webpush" | "fcm" | "apns"

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """Send `message` to `device`; every provider answer becomes a `PushResult`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class PushProviders:
    """What the app holds (one per node): the configured providers by platform."""

    def __init__(
        self,
        providers: Mapping[str, PushProvider],
        *,
        observe: SendObserver | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._observe = observe

    def for_platform(self, platform: str) -> PushProvider | None:
        """The provider for `platform`; None when it is not configured."""
        return self._providers.get(platform)

    @property
    def platforms(self) -> tuple[str, ...]:
        """The configured platforms."""
        return tuple(self._providers)

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """Send through the device's provider, recording the outcome and latency."""
        provider = self.for_platform(device.platform)
        if provider is None:
            result = PushResult(Outcome.FAILED, None, None, "not configured")
            self._record(device.platform, result, 0.0)
            return result
        started = time.perf_counter()
        try:
            result = await provider.send(device, message)
        except Exception as exc:  # a bug in a provider must not kill the queue's worker
            log.exception("push provider %s raised", device.platform)
            result = PushResult(Outcome.FAILED, None, None, f"error: {type(exc).__name__}")
        self._record(device.platform, result, time.perf_counter() - started)
        return result

    def _record(self, platform: str, result: PushResult, seconds: float) -> None:
        if self._observe is not None:
            self._observe(platform, result.outcome, seconds)

    async def close(self) -> None:
        """Close every provider."""
        for provider in self._providers.values():
            await provider.close()


async def open_providers(
    config: PushConfig,
    http: aiohttp.ClientSession,
    *,
    observe: SendObserver | None = None,
) -> PushProviders:
    """The providers `config` configures (Web Push, FCM, APNs), sharing the app's session."""
    from backchannel.push.apns import PRODUCTION_URL, SANDBOX_URL, ApnsProvider
    from backchannel.push.apns import load_key as load_apns_key
    from backchannel.push.fcm import FcmProvider, ServiceAccount
    from backchannel.push.webpush import WebPushProvider

    providers: dict[str, PushProvider] = {}
    if config.vapid_private_key:
        providers["webpush"] = WebPushProvider(
            config.vapid_private_key,
            config.vapid_subject,
            http,
            ttl=config.webpush_ttl,
            timeout=config.timeout,
        )
    if config.fcm_credentials:
        providers["fcm"] = FcmProvider(
            await asyncio.to_thread(ServiceAccount.load, config.fcm_credentials),
            http,
            base_url=config.fcm_base_url,
            timeout=config.timeout,
        )
    if config.apns_key_file:
        missing = [
            f"BACKCHANNEL_APNS_{name.upper()}"
            for name in ("key_id", "team_id", "topic")
            if not getattr(config, f"apns_{name}")
        ]
        if missing:
            raise ValueError(f"BACKCHANNEL_APNS_KEY_FILE is set but not {', '.join(missing)}")
        assert config.apns_key_id and config.apns_team_id and config.apns_topic
        pem = await asyncio.to_thread(Path(config.apns_key_file).read_bytes)
        providers["apns"] = ApnsProvider(
            load_apns_key(pem),
            key_id=config.apns_key_id,
            team_id=config.apns_team_id,
            topic=config.apns_topic,
            base_url=config.apns_base_url
            or (SANDBOX_URL if config.apns_sandbox else PRODUCTION_URL),
            timeout=config.timeout,
        )
    return PushProviders(providers, observe=observe)
