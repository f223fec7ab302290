"""Delivering webhook events: claim due deliveries, POST them signed, retry with backoff.

Each node runs one `WebhookWorker`. A delivery is claimed with `for update skip locked` and
a lease longer than an attempt's timeout, so exactly one node attempts a given (event,
endpoint) at a time; whatever a node leaves behind (it died mid-attempt) is claimed again
once its lease lapses, so delivery is at least once and receivers dedupe on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
from pydantic_core import to_json

from backchannel.domain import notifications
from backchannel.domain.signatures import SIGNATURE_HEADER, signature_header
from backchannel.domain.webhook_events import WebhookHub
from backchannel.persistence import webhook_endpoints as endpoints_store
from backchannel.persistence import webhooks as store
from backchannel.persistence.webhooks import Claimed

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "Backchannel-Event-Id"
DISABLED_NOTIFICATION = "webhook.endpoint_disabled"
USER_AGENT = "Backchannel-Webhooks/1"
PRUNE_EVERY_SECONDS = 3600.0
# Wake-ups closer together than this share one claim (a busy chat commits constantly).
MIN_CLAIM_INTERVAL_SECONDS = 0.01
PRUNE_BATCH = 5000


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt `attempts + 1`: exponential from `base`, capped, with jitter
    (half to all of it, so endpoints that failed together do not retry together)."""
    exponential = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 40))
    return exponential * random.uniform(0.5, 1.0)


def payload(claimed: Claimed) -> bytes:
    """The exact bytes POSTed (and signed): `{id, type, created_at, data}`."""
    data = dict(claimed.data)
    if claimed.include_bodies and claimed.private:
        data.update(claimed.private)
    return to_json(
        {
            "id": str(claimed.event_id),
            "type": claimed.event_type,
            "created_at": claimed.event_created_at,
            "data": data,
        }
    )


async def prune(rt: Runtime, *, max_batches: int = 100) -> int:
    """Forget events past the retention with nothing pending, in batches; returns how many."""
    total = 0
    for _ in range(max_batches):
        async with rt.db.connection() as conn:
            pruned = await store.prune_events(
                conn, rt.settings.webhook_retention_days * 86400.0, PRUNE_BATCH
            )
        total += pruned
        if pruned < PRUNE_BATCH:
            break
    return total


class WebhookWorker:
    """This node's delivery loop."""

    def __init__(self, rt: Runtime, hub: WebhookHub) -> None:
        """`hub`: the node's subscribed-types view (refreshed here) and wake-up."""
        self.rt = rt
        self.hub = hub
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False

    def stop(self) -> None:
        """Stop claiming; attempts in flight finish or are cancelled by the caller."""
        self._stopping = True
        self.hub.wake()

    async def run(self) -> None:
        """Forever: refresh the types view, claim what is due, wait for a wake-up or a poll."""
        settings = self.rt.settings
        next_refresh = 0.0
        next_prune = time.monotonic() + 60.0  # not in the rush of a start-up
        while not self._stopping:
            now = time.monotonic()
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY_SECONDS
                try:
                    await prune(self.rt)
                except Exception as exc:
                    log.warning("webhook event pruning failed: %s", exc)
            if now >= next_refresh:
                next_refresh = now + settings.webhook_types_refresh_seconds
                try:
                    await self.hub.refresh()
                except Exception as exc:
                    log.warning("webhook endpoint types not refreshed: %s", exc)
            self.hub.wakeup.clear()
            try:
                await self.claim_once()
            except Exception as exc:
                log.warning("webhook claim failed: %s", exc)
            timeout = max(0.0, min(settings.webhook_poll_seconds, next_refresh - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.hub.wakeup.wait()
            await asyncio.sleep(MIN_CLAIM_INTERVAL_SECONDS)

    async def claim_once(self) -> int:
        """Claim as many due deliveries as there are free slots and start them."""
        settings = self.rt.settings
        free = settings.webhook_concurrency - len(self._inflight)
        if free <= 0 or self._stopping:
            return 0
        token = uuid.uuid4()
        async with self.rt.db.connection() as conn:
            claimed = await store.claim_due(conn, free, settings.webhook_lease_seconds, token)
        for item in claimed:
            task = asyncio.create_task(self._attempt(item, token), name="webhook-attempt")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.hub.wake()  # a slot is free: more may be due

    async def drain(self, timeout: float) -> None:
        """Let attempts in flight finish within `timeout`, then cancel the rest (their leases
        lapse and another node, or this one after a restart, attempts them again)."""
        if not self._inflight:
            return
        _, pending = await asyncio.wait(set(self._inflight), timeout=max(0.0, timeout))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    async def _attempt(self, claimed: Claimed, token: uuid.UUID) -> None:
        rt = self.rt
        settings = rt.settings
        body = payload(claimed)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(claimed.secret, body),
            EVENT_ID_HEADER: str(claimed.event_id),
        }
        status: int | None = None
        error = ""
        started = time.perf_counter()
        try:
            assert rt.http is not None
            async with rt.http.post(
                claimed.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except TimeoutError:
            error = f"timed out after {settings.webhook_timeout_seconds:g}s"
        except aiohttp.ClientError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        elapsed = time.perf_counter() - started
        latency_ms = int(elapsed * 1000)
        endpoint = str(claimed.endpoint_id)
        if not error:
            assert status is not None
            async with rt.db.connection() as conn:
                await store.mark_delivered(conn, claimed.id, token, status, latency_ms)
            rt.metrics.webhook_deliveries.labels(endpoint, "delivered").inc()
            rt.metrics.webhook_latency.labels("delivered").observe(elapsed)
            return
        window = settings.webhook_retry_window_seconds
        spent = (datetime.now(UTC) - claimed.window_start).total_seconds()
        give_up = spent >= window
        delay = min(
            retry_delay(
                claimed.attempts,
                settings.webhook_retry_base_seconds,
                settings.webhook_retry_max_delay_seconds,
            ),
            max(0.0, window - spent),
        )
        async with rt.db.transaction() as conn:
            failing_too_long = await store.mark_failed_attempt(
                conn,
                claimed.id,
                token,
                status=status,
                error=error,
                give_up=give_up,
                retry_in_seconds=delay,
                latency_ms=latency_ms,
                window_seconds=window,
            )
        outcome = "failed" if give_up else "retry"
        rt.metrics.webhook_deliveries.labels(endpoint, outcome).inc()
        rt.metrics.webhook_latency.labels(outcome).observe(elapsed)
        log.info(
            "webhook delivery failed",
            extra={"endpoint": endpoint, "error": error, "attempts": claimed.attempts},
        )
        if failing_too_long:
            await self._disable(claimed.endpoint_id)

    async def _disable(self, endpoint_id: int) -> None:
        """Disable an endpoint that failed for the whole window, and tell the admins (once)."""
        rt = self.rt
        async with rt.db.transaction() as conn:
            endpoint = await endpoints_store.disable_failing(conn, endpoint_id)
            admins = await endpoints_store.admin_ids(conn) if endpoint is not None else []
        if endpoint is None:
            return
        rt.metrics.webhook_deliveries.labels(str(endpoint_id), "disabled").inc()
        log.warning("webhook endpoint disabled for failing", extra={"endpoint": endpoint_id})
        if admins:
            await notifications.notify(
                rt,
                admins,
                DISABLED_NOTIFICATION,
                "A webhook endpoint was disabled",
                f"Every delivery to {endpoint.url} failed for the whole retry window; "
                f"its owner ({endpoint.owner}) can re-enable it with PATCH enabled: true.",
                {"endpoint_id": str(endpoint.id), "url": endpoint.url, "owner": endpoint.owner},
                dedupe_key=f"webhook-disabled:{endpoint.id}:{endpoint.disabled_at}",
            )
