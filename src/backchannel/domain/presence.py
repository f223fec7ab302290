"""Presence: who is online, announced only on real changes, to those allowed to watch.

Every node runs one `PresenceTracker`. The socket hooks in `handlers/base.py` tell it, with no
I/O, when an authenticated socket opens or closes on any namespace; it keeps this node's
count of sockets per user and marks the user dirty. One background task sends the dirty
users' counts to the store (absolute counts, batched, so retries are harmless), refreshes the
node's heartbeat, finalizes debounced offlines and reaps dead nodes, and announces what the
store reports as changed. Design and scale notes: docs/presence.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backchannel.domain import webhook_events
from backchannel.errors import Forbidden, Unavailable
from backchannel.outage_log import report
from backchannel.persistence import presence as presence_db
from backchannel.persistence.webhooks import NewEvent
from backchannel.rooms.names import Namespace, presence_room
from backchannel.rooms.presence import Change, PresenceStore, Status
from backchannel.rooms.presence_rules import may_watch
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

MAX_WATCH_IDS = 500
_BATCH = 1000  # users per store call, so one Lua script never holds Redis for long
AUDIT_SECONDS = 30.0  # how often this node's sockets are checked against live transports

UserId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class WatchRequest(BaseModel):
    """`presence:subscribe` / `presence:unsubscribe`: at most 500 user ids."""

    model_config = ConfigDict(extra="forbid")
    user_ids: Annotated[list[UserId], Field(max_length=MAX_WATCH_IDS)]


class SetStatus(BaseModel):
    """`presence:set`."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["online", "away"]


class Presence(BaseModel):
    """One user's presence; `last_seen` is given for offline users (null if never seen)."""

    user_id: str
    status: Status
    last_seen: datetime | None = None


class PresenceList(BaseModel):
    """The ack of `presence:subscribe`."""

    items: list[Presence]


class Unwatched(BaseModel):
    """The ack of `presence:unsubscribe`."""

    user_ids: list[str]


class PresenceTracker:
    """This node's sockets per user, kept in step with the store; announces changes."""

    def __init__(self, rt: Runtime, store: PresenceStore) -> None:
        self.rt = rt
        self.store = store
        self._sockets: dict[tuple[str, str], str] = {}
        self._local: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._registered = False
        self._stopping = False

    # -- socket hooks: synchronous, so connect and disconnect cannot interleave them -------

    def socket_opened(self, namespace: str, sid: str, user_id: str) -> None:
        """An authenticated socket of `user_id` opened on this node."""
        key = (namespace, sid)
        if key in self._sockets:
            return
        self._sockets[key] = user_id
        self._local[user_id] = self._local.get(user_id, 0) + 1
        self._touch(user_id)

    def socket_closed(self, namespace: str, sid: str) -> None:
        """A socket closed; unknown sockets (refused connects) are ignored."""
        user_id = self._sockets.pop((namespace, sid), None)
        if user_id is None:
            return
        left = self._local.get(user_id, 0) - 1
        if left > 0:
            self._local[user_id] = left
        else:
            self._local.pop(user_id, None)
        self._touch(user_id)

    def _touch(self, user_id: str) -> None:
        self._dirty.add(user_id)
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Register this node and start the background task."""
        try:
            await self.store.heartbeat()
            self._registered = True
        except Exception as exc:
            log.warning("presence heartbeat failed at start-up: %s", exc)
        self._task = asyncio.create_task(self._run(), name="presence")

    async def stop(self) -> None:
        """Stop the task, send the last counts, and leave; users left with nothing go offline."""
        # The flag, not only the cancel: on Python < 3.12 a redis-py 8 command (it times out
        # through asyncio.wait_for) can swallow a CancelledError, and the loop would go on.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
            await self.announce(await self.store.leave(time.time() * 1000))
        except Exception as exc:
            log.warning("presence could not leave cleanly: %s", exc)

    async def _run(self) -> None:
        settings = self.rt.settings
        next_beat = time.monotonic() + settings.presence_heartbeat_seconds
        next_sweep = time.monotonic() + settings.presence_sweep_seconds
        next_audit = time.monotonic() + AUDIT_SECONDS
        while not self._stopping:
            timeout = max(0.0, min(next_beat, next_sweep) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                now = time.monotonic()
                if now >= next_audit:
                    next_audit = now + AUDIT_SECONDS
                    self.audit()
                # Register before the first counts go out: counts of a node that is not in
                # the node set would never be reaped if it died.
                if now >= next_beat or not self._registered:
                    next_beat = now + settings.presence_heartbeat_seconds
                    await self._heartbeat()
                await self.flush()
                if now >= next_sweep:
                    next_sweep = now + settings.presence_sweep_seconds
                    await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis or Postgres is down: keep the local counts and try again shortly.
                report(log, "presence update", exc)
                await asyncio.sleep(min(1.0, settings.presence_sweep_seconds))

    def audit(self) -> None:
        """Forget sockets whose transport is gone without a disconnect event."""
        for (namespace, sid), _ in list(self._sockets.items()):
            if not self.rt.emitter.socket_alive(namespace, sid):
                log.info("presence: dropping a socket that vanished", extra={"sid": sid})
                self.socket_closed(namespace, sid)

    async def _heartbeat(self) -> None:
        lost = await self.store.heartbeat()
        self._registered = True
        if lost:
            # The store lost this node (Redis restarted, or we were reaped after a stall):
            # send every count again; users who came back online are announced.
            log.warning("presence: this node was forgotten by the store; resending counts")
            self._dirty.update(self._local)
            if self.rt.socket_counts is not None:
                self.rt.socket_counts.forgotten()
            await self.flush()
        if self.rt.socket_counts is not None:
            # The per-namespace counts live in the same Redis: resend what it lost or what
            # failed to reach it, or readers of /chat are notified of every message.
            await self.rt.socket_counts.resend()
        await self.announce(await self.store.reap_dead_nodes(time.time() * 1000))

    async def _sweep(self) -> None:
        debounce_ms = self.rt.settings.presence_offline_debounce_seconds * 1000
        cutoff = time.time() * 1000 - debounce_ms
        while True:
            gone = await self.store.due_offline(cutoff, _BATCH)
            await self.announce(gone)
            if len(gone) < _BATCH:
                return

    async def flush(self) -> None:
        """Send the counts of users whose sockets changed; announce who came online."""
        async with self._flushing:
            while self._dirty:
                batch: list[str] = []
                while self._dirty and len(batch) < _BATCH:
                    batch.append(self._dirty.pop())
                counts = {uid: self._local.get(uid, 0) for uid in batch}
                try:
                    came_online = await self.store.apply(counts, time.time() * 1000)
                except BaseException:
                    self._dirty.update(batch)
                    raise
                await self.announce(came_online)

    # -- announcing -----------------------------------------------------------------------

    async def announce(self, changes: Sequence[Change]) -> None:
        """Record `last_seen` of users gone offline, then one emit per change to the user's
        presence room, cluster-wide, however many watch; skip changes already superseded."""
        if not changes:
            return
        gone = [(c.user_id, c.last_seen) for c in changes if c.last_seen is not None]
        if gone:
            try:
                async with self.rt.db.transaction() as conn:
                    await presence_db.record_last_seen(conn, gone)
            except Exception as exc:
                # The offline is decided in the store; say so even if last_seen is not kept.
                log.warning("could not record last_seen: %s", exc)
        try:
            current = await self.store.versions([c.user_id for c in changes])
        except Exception as exc:
            log.warning("presence versions unavailable, announcing anyway: %s", exc)
            current = {c.user_id: c.version for c in changes}
        # Another node has decided something newer of a superseded change and announces that.
        fresh = [c for c in changes if current.get(c.user_id) == c.version]
        try:
            # The store hands each transition to exactly one node: this one writes its event.
            # `away` is a status of a connected user, not a connection transition.
            await webhook_events.record_now(
                self.rt, [_webhook_event(c) for c in fresh if c.status != "away"]
            )
        except Exception as exc:
            log.warning("presence webhook events not recorded: %s", exc)
        for change in fresh:
            self.rt.metrics.presence_changes.labels(change.status).inc()
            presence = Presence(
                user_id=change.user_id, status=change.status, last_seen=change.last_seen
            )
            try:
                await self.rt.emitter.to_room(
                    Namespace.PRESENCE, presence_room(change.user_id), "presence", presence
                )
            except Exception as exc:
                log.warning("presence emit failed: %s", exc)


def _webhook_event(change: Change) -> NewEvent:
    kind = webhook_events.USER_ONLINE if change.status == "online" else webhook_events.USER_OFFLINE
    return webhook_events.event(
        kind,
        {
            "user_id": change.user_id,
            "status": change.status,
            "last_seen": change.last_seen.isoformat() if change.last_seen else None,
        },
    )


def _tracker(rt: Runtime) -> PresenceTracker:
    if rt.presence is None:
        raise Unavailable("presence is not ready")
    return rt.presence


async def watch(
    rt: Runtime, viewer_id: str, viewer_role: str, sid: str, request: WatchRequest
) -> PresenceList:
    """Start delivering `presence` events of these users to this socket; return their status.

    All or nothing: one id the viewer may not watch refuses the whole call, naming the ids.
    """
    tracker = _tracker(rt)
    user_ids = list(dict.fromkeys(request.user_ids))
    if not user_ids:
        return PresenceList(items=[])
    async with rt.db.connection() as conn:
        facts = await presence_db.watch_facts(conn, viewer_id, user_ids)
    relations = await rt.blocks.relations(viewer_id)
    refused = [
        uid
        for uid in user_ids
        if relations.either(uid) or not may_watch(viewer_id, viewer_role, facts[uid])
    ]
    if refused:
        raise Forbidden("you may not watch the presence of these users", {"user_ids": refused})
    # Join first, read second: a change in between arrives as an event (at worst repeating
    # what the ack says) instead of being lost.
    for user_id in user_ids:
        await rt.emitter.join(Namespace.PRESENCE, sid, presence_room(user_id))
    await tracker.flush()  # sockets that just opened on this node count in the answer
    statuses = await tracker.store.statuses(user_ids)
    return PresenceList(
        items=[
            Presence(
                user_id=uid,
                status=statuses[uid],
                last_seen=facts[uid].last_seen if statuses[uid] == "offline" else None,
            )
            for uid in user_ids
        ]
    )


async def unwatch(rt: Runtime, sid: str, request: WatchRequest) -> Unwatched:
    """Stop delivering these users' `presence` events to this socket."""
    user_ids = list(dict.fromkeys(request.user_ids))
    for user_id in user_ids:
        await rt.emitter.leave(Namespace.PRESENCE, sid, presence_room(user_id))
    return Unwatched(user_ids=user_ids)


async def set_status(rt: Runtime, user_id: str, request: SetStatus) -> Presence:
    """The caller says they are away or back; watchers hear of it only if it changed."""
    tracker = _tracker(rt)
    await rt.limiter.hit(f"presence:set:{user_id}", Rate.parse(rt.settings.presence_set_rate_limit))
    # The caller's own socket count must be in the store first, or a debounced offline
    # from an earlier session could still fire after this.
    await tracker.flush()
    change = await tracker.store.set_status(user_id, request.status)
    if change is not None:
        await tracker.announce([change])
    return Presence(user_id=user_id, status=request.status)
