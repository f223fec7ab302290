"""Webhook metrics as an operator scrapes them: queue depth, oldest pending age, attempts by
endpoint and outcome, and their latency."""

from __future__ import annotations

from typing import Any

from tests.nodes import eventually
from tests.server.test_metrics import scrape, value
from tests.support import Api
from tests.webhooks.conftest import bearer, subscribe
from tests.webhooks.receiver import Receiver


async def test_queue_depth_oldest_age_outcomes_and_latency(
    api: Api, key: str, receiver: Receiver
) -> None:
    receiver.fail_times = 1000
    endpoint = await subscribe(api, key, receiver, ["notification.created"])
    fan = await api.register()
    for title in ("one", "two"):
        status, _ = await api.call(
            "POST",
            "/api/v1/publish",
            json={"user_ids": [fan.id], "notification": {"type": "news", "title": title}},
            headers=bearer(key),
        )
        assert status == 202

    async def retried() -> dict[Any, float] | None:
        samples = await scrape(api)
        key_ = (
            "backchannel_webhook_deliveries_total",
            frozenset({"endpoint": endpoint["id"], "outcome": "retry"}.items()),
        )
        return samples if samples.get(key_, 0) >= 2 else None

    samples = await eventually(retried, timeout=10, what="failed attempts counted")
    assert value(samples, "backchannel_webhook_queue_depth") == 2
    assert value(samples, "backchannel_webhook_oldest_pending_age_seconds") > 0
    assert value(samples, "backchannel_webhook_delivery_seconds_count", outcome="retry") >= 2

    receiver.fail_times = 0
    await receiver.wait_delivered("notification.created", 2)

    async def drained() -> dict[Any, float] | None:
        samples = await scrape(api)
        return samples if value(samples, "backchannel_webhook_queue_depth") == 0 else None

    samples = await eventually(drained, what="the queue drained")
    assert value(samples, "backchannel_webhook_oldest_pending_age_seconds") == 0
    assert (
        value(
            samples,
            "backchannel_webhook_deliveries_total",
            endpoint=endpoint["id"],
            outcome="delivered",
        )
        == 2
    )
    assert value(samples, "backchannel_webhook_delivery_seconds_count", outcome="delivered") == 2
