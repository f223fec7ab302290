"""Delivering what committed money changes must tell sockets, through the outbox.

Inside a transaction, `Deliveries.to_user/to_room/join/leave` write outbox rows. After commit,
`publish(rt, ids)` claims and delivers them at once; `run_publisher` on every node delivers
rows nobody published (the process died between commit and emit). Delivery is at least once.

A publish that fails (Redis refused or dropped it: `PublishFailed`, or the row itself cannot be
delivered) leaves its row pending with an attempt count, the error and a backoff before the
background publisher tries again; after `outbox_max_attempts` the row is dead (a metric, and
`backchannel outbox list --dead`). Each row is tried on its own, so a row that always fails
never holds back the rows claimed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from backchannel.outage_log import report
from backchannel.persistence import outbox
from backchannel.persistence.database import Connection
from backchannel.rooms.emitter import Emitter
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

# How long a publisher holds a claimed row before another may retry it.
LEASE_SECONDS = 30.0
# Rows younger than this are left to the request that wrote them.
STALE_AFTER_SECONDS = 2.0


AfterCommit = Callable[["Runtime"], Awaitable[None]]


@dataclass
class Deliveries:
    """The outbox rows one transaction wrote, and what else must run once it has committed."""

    conn: Connection
    ids: list[int] = field(default_factory=list)
    after_commit: list[AfterCommit] = field(default_factory=list)

    async def to_user(self, namespace: Namespace, user_id: str, event: str, data: Any) -> None:
        """`event` to every socket of a user in one namespace."""
        self.ids.append(
            await outbox.add(
                self.conn, "emit_user", [namespace.value], user_id, event, to_jsonable_python(data)
            )
        )

    async def to_room(self, namespace: Namespace, room: str, event: str, data: Any) -> None:
        """`event` to a room, as one cluster-wide emit."""
        self.ids.append(
            await outbox.add(
                self.conn, "emit_room", [namespace.value], room, event, to_jsonable_python(data)
            )
        )

    async def join(self, namespaces: Iterable[Namespace], user_id: str, room: str) -> None:
        """The user's open sockets join a room, on whichever node holds them."""
        self.ids.append(
            await outbox.add(
                self.conn, "join", [ns.value for ns in namespaces], user_id, None, {"room": room}
            )
        )

    async def leave(self, namespaces: Iterable[Namespace], user_id: str, room: str) -> None:
        """The user's open sockets leave a room."""
        self.ids.append(
            await outbox.add(
                self.conn, "leave", [ns.value for ns in namespaces], user_id, None, {"room": room}
            )
        )


async def _deliver(emitter: Emitter, row: outbox.OutboxRow) -> None:
    if row.kind in ("join", "leave"):
        room = str(row.payload["room"])
        if row.kind == "join":
            await emitter.join_user(row.namespaces, row.target, room)
        else:
            await emitter.leave_user(row.namespaces, row.target, room)
        return
    assert row.event is not None
    for namespace in row.namespaces:
        if row.kind == "emit_user":
            await emitter.to_user(Namespace(namespace), row.target, row.event, row.payload)
        else:
            await emitter.to_room(Namespace(namespace), row.target, row.event, row.payload)


async def _publish_rows(rt: Runtime, rows: list[outbox.OutboxRow]) -> None:
    # Strict: a row counts as sent only once every node could be told.
    emitter = rt.emitter.strict()
    sent: list[int] = []
    failed: list[tuple[outbox.OutboxRow, Exception]] = []
    try:
        for row in rows:
            try:
                await _deliver(emitter, row)
            except Exception as exc:
                failed.append((row, exc))
            else:
                sent.append(row.id)
    finally:
        if sent or failed:
            async with rt.db.connection() as conn:
                if sent:
                    await outbox.mark_sent(conn, sent)
                for row, error in failed:
                    await _record_failure(rt, conn, row, error)


async def _record_failure(
    rt: Runtime, conn: Connection, row: outbox.OutboxRow, exc: Exception
) -> None:
    settings = rt.settings
    dead = await outbox.mark_failed(
        conn,
        row.id,
        f"{exc.__class__.__name__}: {exc}",
        retry_base_seconds=settings.outbox_retry_base_seconds,
        retry_max_seconds=settings.outbox_retry_max_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    rt.metrics.outbox_publish_failures.labels("dead" if dead else "retry").inc()
    if dead:
        log.error(
            "outbox row %d dead-lettered after %d failed publishes: %s: %s",
            row.id,
            settings.outbox_max_attempts,
            exc.__class__.__name__,
            exc,
        )
    else:
        report(log, f"outbox row {row.id} publish (kept for a retry)", exc)


async def publish(rt: Runtime, ids: list[int]) -> None:
    """Deliver these committed rows now; whatever fails is retried by the background task."""
    if not ids:
        return
    try:
        async with rt.db.connection() as conn:
            rows = await outbox.claim(conn, ids, LEASE_SECONDS)
        await _publish_rows(rt, rows)
    except Exception as exc:
        report(log, "outbox publish (the background publisher will retry)", exc)


async def finish(rt: Runtime, fx: Deliveries) -> None:
    """After commit: publish the transaction's outbox rows, then run its after-commit steps."""
    await publish(rt, fx.ids)
    for step in fx.after_commit:
        try:
            await step(rt)
        except Exception:
            log.exception("after-commit step failed")


def finish_soon(rt: Runtime, fx: Deliveries) -> None:
    """`finish` in the background (the caller answers without waiting)."""
    if not fx.ids and not fx.after_commit:
        return
    task = asyncio.create_task(finish(rt, fx))
    rt.background.add(task)
    task.add_done_callback(rt.background.discard)


async def publish_stale_once(rt: Runtime, limit: int = 200) -> int:
    """One pass of the background publisher; returns how many rows it delivered."""
    async with rt.db.connection() as conn:
        rows = await outbox.claim_stale(conn, limit, LEASE_SECONDS, STALE_AFTER_SECONDS)
    if rows:
        log.info("publishing %d outbox rows left unsent", len(rows))
        rt.metrics.outbox_redelivered.inc(len(rows))
        await _publish_rows(rt, rows)
    return len(rows)


async def run_publisher(rt: Runtime) -> None:
    """Forever: publish rows left unsent, and forget rows sent a day ago."""
    passes = 0
    while True:
        await asyncio.sleep(rt.settings.outbox_poll_seconds)
        try:
            await publish_stale_once(rt)
            passes += 1
            if passes % 600 == 0:
                async with rt.db.connection() as conn:
                    await outbox.prune(conn, 86400.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            report(log, "outbox publisher pass", exc)


async def drain_background(rt: Runtime, timeout: float) -> None:
    """Wait at most `timeout` for in-flight publishes on shutdown."""
    if rt.background:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*rt.background, return_exceptions=True), timeout)
