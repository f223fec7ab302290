"""The webhook delivery worker's lifetime on this node (one `cleanup_ctx` entry in `app.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from backchannel.domain.webhook_delivery import WebhookWorker
from backchannel.domain.webhook_events import WebhookHub, changes_channel
from backchannel.server.keys import RUNTIME
from backchannel.server.runtime import Runtime

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
    stopping = asyncio.Event()
    listener = asyncio.create_task(_listen(rt, hub, stopping), name="webhook-changes")
    yield
    stopping.set()
    listener.cancel()
    worker.stop()
    budget = rt.shutdown.seconds_left(at_most=STOP_SECONDS)
    await worker.drain(budget)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=max(0.1, rt.shutdown.seconds_left(at_most=1.0)))
    if not done:
        log.warning("webhook worker did not stop in time")
    await asyncio.wait({listener}, timeout=1.0)
    # The hub stays: what still commits while the rest shuts down (the offlines presence
    # announces as it leaves) keeps its events, delivered by another node or after restart.


async def _listen(rt: Runtime, hub: WebhookHub, stopping: asyncio.Event) -> None:
    """Re-read the subscribed types when another node announces an endpoint change."""
    if rt.redis is None:
        return
    delay = 0.1
    while not stopping.is_set():
        try:
            pubsub = rt.redis.pubsub(ignore_subscribe_messages=True)
            async with pubsub:
                await pubsub.subscribe(changes_channel(rt.settings.redis_prefix))
                await hub.refresh()  # whatever changed while this node was not listening
                delay = 0.1
                while not stopping.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await hub.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook change channel down, retrying: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        delay = min(delay * 2, 5.0)
