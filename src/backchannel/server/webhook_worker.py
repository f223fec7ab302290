"""The webhook delivery worker's lifetime on this node (one `cleanup_ctx` entry in `app.py`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from backchannel.domain.webhook_delivery import WebhookWorker
from backchannel.domain.webhook_events import WebhookHub
from backchannel.server.keys import RUNTIME

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0


async def webhook_worker(app: web.Application) -> AsyncIterator[None]:
    """Subscribed-types view, group-commit hook and delivery loop; stopped within the grace."""
    rt = app[RUNTIME]
    gauge = rt.metrics.webhook_subscribed_types
    hub = WebhookHub(rt.db, on_refresh=lambda types: gauge.set(len(types)))
    try:
        await hub.refresh()
    except Exception as exc:
        # Until the first refresh every event is checked by its statement (see `wants`).
        log.warning("webhook endpoint types not read at start-up: %s", exc)
    rt.webhooks = hub
    rt.appender.hook = hub
    worker = WebhookWorker(rt, hub)
    task = asyncio.create_task(worker.run(), name="webhook-worker")
    yield
    worker.stop()
    budget = rt.shutdown.seconds_left(at_most=STOP_SECONDS)
    await worker.drain(budget)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=max(0.1, rt.shutdown.seconds_left(at_most=1.0)))
    if not done:
        log.warning("webhook worker did not stop in time")
    # The hub stays: what still commits while the rest shuts down (the offlines presence
    # announces as it leaves) keeps its events, delivered by another node or after restart.
