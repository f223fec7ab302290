"""What the push queue's worker does with the rows it claimed: decide, then send.

At send time, per user: nothing goes out while the user has a `/chat` or `/notifications`
socket on any node (they see it live), nothing for a type in `push_muted_types`, nothing
already read (on another device). Inside quiet hours rows are held; when they end, the
held rows go out as one summary push. Otherwise one push per device, with the user's unread
count as the badge. A device the provider calls gone is deleted; a retryable answer is
retried for that device with exponential backoff and jitter, within a bounded number of
attempts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from backchannel.domain.quiet_hours import QuietHours, summary_text
from backchannel.persistence import devices, notification_preferences, push_queue, users
from backchannel.persistence import notifications as store
from backchannel.persistence.database import Connection
from backchannel.persistence.devices import Device
from backchannel.persistence.notifications import ReceivedNotification
from backchannel.persistence.push_queue import QueuedPush
from backchannel.push.messages import Outcome, PushMessage, PushResult
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

# Users handled at once by one worker round (each sends to its devices concurrently).
USER_CONCURRENCY = 8
SUMMARY_TYPE = "summary"
SUMMARY_COLLAPSE_KEY = "summary"
SUMMARY_MAX_IDS = 20


class Sender(Protocol):
    """What sends one push to one device (`backchannel.push.providers.PushProviders`)."""

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """Send; never raises."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a retryable send is tried again."""

    max_attempts: int
    base_seconds: float
    max_seconds: float

    def delay(self, attempts: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before attempt `attempts + 1`: exponential, jittered, never before
        the provider's `Retry-After`. `jitter` is in [0, 1)."""
        backoff: float = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempts, 30))
        backoff *= 0.5 + jitter / 2  # "equal jitter": between half and the whole backoff
        return max(backoff, min(retry_after or 0.0, self.max_seconds))


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's knobs, from the settings."""

    lease_seconds: float
    batch: int
    retry: RetryPolicy
    # The longest one provider request may take: a user's sends (to every device at once)
    # must start early enough to end within the lease, or another node could send too.
    send_timeout_seconds: float


async def deliver_due(rt: Runtime, sender: Sender, config: WorkerConfig, now: datetime) -> int:
    """Claim due rows and handle them; returns how many rows were claimed."""
    async with rt.db.transaction() as conn:
        rows = await push_queue.claim_due(conn, config.batch, config.lease_seconds)
    if not rows:
        return 0
    by_user: dict[str, list[QueuedPush]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    limit = asyncio.Semaphore(USER_CONCURRENCY)
    loop = asyncio.get_running_loop()
    # After this, a user's sends might outlast the lease: their rows go back instead.
    start_by = loop.time() + config.lease_seconds - 2 * config.send_timeout_seconds - 1.0

    async def one(user_id: str, mine: list[QueuedPush]) -> None:
        async with limit:
            if loop.time() > start_by:
                async with rt.db.connection() as conn:
                    await push_queue.release(conn, [row.id for row in mine])
                return
            try:
                await _deliver_user(rt, sender, config, user_id, mine, now)
            except Exception:
                # The claim lapses and another round (here or elsewhere) retries the rows.
                log.exception("push delivery failed for a user; retried after the lease")

    await asyncio.gather(*(one(uid, mine) for uid, mine in by_user.items()))
    return len(rows)


def _count(rt: Runtime, outcome: str, n: int = 1) -> None:
    if n:
        rt.metrics.push_queue_outcomes.labels(outcome).inc(n)


async def _online(rt: Runtime, user_id: str) -> bool:
    counts = rt.socket_counts
    if counts is None:
        return False
    for namespace in (Namespace.CHAT, Namespace.NOTIFICATIONS):
        if await counts.with_open(namespace, [user_id]):
            return True
    return False


async def _deliver_user(
    rt: Runtime,
    sender: Sender,
    config: WorkerConfig,
    user_id: str,
    rows: list[QueuedPush],
    now: datetime,
) -> None:
    if any(row.held for row in rows):
        # A summary speaks for every held row of the user, so take them all.
        async with rt.db.transaction() as conn:
            more = await push_queue.claim_held(conn, user_id, config.lease_seconds)
        seen = {row.id for row in rows}
        rows = sorted([*rows, *(r for r in more if r.id not in seen)], key=lambda r: r.id)
    if await _online(rt, user_id):
        async with rt.db.connection() as conn:
            await push_queue.finish(conn, [row.id for row in rows])
        _count(rt, "skipped_online", len(rows))
        return
    async with rt.db.connection() as conn:
        prefs = await notification_preferences.get_preferences(conn, user_id)
        unread = await store.unread_among(conn, user_id, [row.notification_id for row in rows])
        read = [row for row in rows if row.notification_id not in unread]
        muted = [
            row
            for row in rows
            if row.notification_id in unread
            and unread[row.notification_id].type in prefs.push_muted_types
        ]
        await push_queue.finish(conn, [row.id for row in (*read, *muted)])
    _count(rt, "dropped_read", len(read))
    _count(rt, "skipped_muted", len(muted))
    gone = {row.id for row in (*read, *muted)}
    rows = [row for row in rows if row.id not in gone]
    if not rows:
        return
    quiet = _quiet_hours(prefs.quiet_hours)
    if quiet is not None and quiet.contains(now):
        async with rt.db.connection() as conn:
            await push_queue.hold(conn, [row.id for row in rows], quiet.next_end(now))
        _count(rt, "held", sum(1 for row in rows if not row.held))
        return
    async with rt.db.connection() as conn:
        badge = await store.unread_count(conn, user_id)
        owned = await devices.list_devices(conn, user_id)
        names = await _sender_names(conn, [unread[row.notification_id] for row in rows])
    if any(row.held for row in rows) and len(rows) > 1:
        items = [unread[row.notification_id] for row in rows]
        batches = [(rows, summary_message(items, names, badge))]
        _count(rt, "summarised", len(rows))
    else:
        batches = [([row], push_message(unread[row.notification_id], badge)) for row in rows]
    # At once, so a user's pushes take one provider round trip, well within the lease.
    await asyncio.gather(
        *(_send(rt, sender, config, batch_rows, message, owned) for batch_rows, message in batches)
    )


def _quiet_hours(stored: dict[str, Any] | None) -> QuietHours | None:
    if not stored:
        return None
    try:
        return QuietHours.model_validate(stored)
    except ValidationError:  # e.g. a zone the system's tz database no longer has
        log.warning("stored quiet hours no longer valid; ignored: %r", stored)
        return None


async def _sender_names(conn: Connection, items: Sequence[ReceivedNotification]) -> dict[str, str]:
    ids = sorted({sid for n in items if isinstance(sid := n.data.get("sender_id"), str)})
    return await users.display_names(conn, ids) if ids else {}


def push_message(notification: ReceivedNotification, badge: int) -> PushMessage:
    """The push of one stored notification: what its recipient sees in the inbox.

    A paid message's notification already says only "Sent a paid message"; a digest's items
    stay in the inbox (a push has about 4 KB), the push says how many.
    """
    data = notification.data
    collapse_key = notification.collapse_key
    if isinstance(data.get("digest_key"), str) and "items" in data:
        collapse_key = f"digest:{data['digest_key']}"
        data = {key: value for key, value in data.items() if key != "items"}
    return PushMessage(
        notification_id=notification.id,
        type=notification.type,
        title=notification.title,
        body=notification.body,
        data=data,
        collapse_key=collapse_key,
        badge=badge,
    )


def summary_message(
    items: Sequence[ReceivedNotification], names: dict[str, str], badge: int
) -> PushMessage:
    """One push for everything quiet hours held: "3 new messages from Ada and 1 tip"."""
    described = []
    for item in items:
        sender_id = item.data.get("sender_id")
        described.append((item.type, names.get(sender_id) if isinstance(sender_id, str) else None))
    return PushMessage(
        notification_id=None,
        type=SUMMARY_TYPE,
        title=f"{len(items)} new notifications",
        body=summary_text(described),
        # The newest ids only: a push has about 4 KB (the count says how many there are).
        data={
            "notification_ids": [str(item.id) for item in items[-SUMMARY_MAX_IDS:]],
            "count": len(items),
        },
        collapse_key=SUMMARY_COLLAPSE_KEY,
        badge=badge,
    )


async def _send(
    rt: Runtime,
    sender: Sender,
    config: WorkerConfig,
    rows: list[QueuedPush],
    message: PushMessage,
    owned: list[Device],
) -> None:
    wanted: set[int] | None = None
    if all(row.device_ids is not None for row in rows):
        wanted = {d for row in rows for d in row.device_ids or []}
    targets = [d for d in owned if wanted is None or d.id in wanted]
    results = await asyncio.gather(*(sender.send(device, message) for device in targets))
    retry: list[int] = []
    retry_after: float | None = None
    errors: list[str] = []
    async with rt.db.connection() as conn:
        for device, result in zip(targets, results, strict=True):
            _count(rt, f"device_{result.outcome.value}")
            if result.outcome is Outcome.GONE:
                await devices.delete_gone(conn, device.id)
            elif result.outcome is Outcome.RETRY:
                retry.append(device.id)
                errors.append(f"{device.platform}: {result.detail}")
                if result.retry_after is not None:
                    retry_after = max(retry_after or 0.0, result.retry_after)
            elif result.outcome is Outcome.FAILED:
                log.warning("push to a %s device failed: %s", device.platform, result.detail)
        ids = [row.id for row in rows]
        attempts = max(row.attempts for row in rows) + 1
        if retry and attempts < config.retry.max_attempts:
            delay = config.retry.delay(attempts - 1, retry_after, random.random())
            await push_queue.retry(conn, ids, retry, delay, "; ".join(errors))
            _count(rt, "retried", len(rows))
            return
        await push_queue.finish(conn, ids)
    _count(rt, "gave_up" if retry else "sent", len(rows))
