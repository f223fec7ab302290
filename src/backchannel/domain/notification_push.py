"""Live push of stored notifications: to recipients' sockets, audience rooms, unread counts.

Everything here runs after the notification has committed and never decides what is stored;
a socket that misses a push catches up with `notifications:sync`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backchannel.domain.event_models import UnreadNotice
from backchannel.domain.notification_models import Notification, PublishResult
from backchannel.outage_log import report
from backchannel.persistence import notification_preferences
from backchannel.persistence import notifications as store
from backchannel.rooms.names import Namespace, subscribers_room

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Staged:
    """A notification stored in a transaction; `deliver` once that transaction has committed."""

    result: PublishResult
    notification: Notification | None = None
    recipients: list[str] = field(default_factory=list)
    # Recipients whose unread notification with the same collapse key was replaced.
    replaced: set[str] = field(default_factory=set)
    audience_of: str | None = None
    # Rows the transaction wrote to the push queue (recipients with a device).
    queued_pushes: int = 0

    async def deliver(self, rt: Runtime) -> None:
        """Push it live to every socket of each recipient; never raises (it is stored).

        Device pushes were queued in the transaction; this node's worker is woken for them.
        """
        if self.queued_pushes and rt.push_worker is not None:
            rt.push_worker.wake()
        rt.metrics.notifications.labels(
            "deduplicated" if self.notification is None else "stored"
        ).inc()
        rt.metrics.notification_receipts.inc(len(self.recipients))
        if self.notification is None or not self.recipients:
            return  # a deduplicated repeat, or nobody to tell
        try:
            await _deliver(rt, self)
        except Exception as exc:
            report(log, "live notification delivery (recipients get it on sync)", exc)


async def _deliver(rt: Runtime, staged: Staged) -> None:
    notification = staged.notification
    assert notification is not None
    recipients = staged.recipients
    push_counts = len(recipients) <= rt.settings.notification_unread_push_max
    async with rt.db.connection() as conn:
        muted = await notification_preferences.muted_among(conn, recipients, notification.type)
        changed = [uid for uid in recipients if uid not in muted and uid not in staged.replaced]
        counts = await store.unread_counts(conn, changed) if push_counts and changed else {}
    emitter = rt.emitter
    ns = Namespace.NOTIFICATIONS
    if staged.audience_of is not None and not muted:
        # One emit to the room the subscribers' sockets joined on connect.
        await emitter.to_room(
            ns, subscribers_room(staged.audience_of), "notification", notification
        )
    else:
        live = [uid for uid in recipients if uid not in muted]
        if live:
            await emitter.to_users(ns, live, "notification", notification)
    for user_id, count in counts.items():
        await push_unread(rt, user_id, count)


async def push_unread(rt: Runtime, user_id: str, count: int) -> None:
    """Tell every `/notifications` socket of the user its new unread count."""
    await rt.emitter.to_user(
        Namespace.NOTIFICATIONS, user_id, "notifications:unread", UnreadNotice(count=count)
    )


async def join_audience_rooms(rt: Runtime, sid: str, user_id: str) -> None:
    """Put a new `/notifications` socket in the room of each creator its user subscribes to."""
    async with rt.db.connection() as conn:
        creators = await store.subscribed_creator_ids(conn, user_id)
    for creator_id in creators:
        await rt.emitter.join(Namespace.NOTIFICATIONS, sid, subscribers_room(creator_id))


async def join_audience(rt: Runtime, fan_id: str, creator_id: str) -> None:
    """A subscription started: the fan's open sockets join the creator's audience room.

    Every `/notifications` socket of the fan, on any node, joins now; new sockets join on
    connect. Call after the subscription has committed.
    """
    await _move_audience(rt, fan_id, creator_id, join=True)


async def leave_audience(rt: Runtime, fan_id: str, creator_id: str) -> None:
    """A subscription ended: the fan's open sockets leave the creator's audience room."""
    await _move_audience(rt, fan_id, creator_id, join=False)


async def _move_audience(rt: Runtime, fan_id: str, creator_id: str, *, join: bool) -> None:
    room = subscribers_room(creator_id)
    if join:
        await rt.emitter.join_user_to_room(Namespace.NOTIFICATIONS, fan_id, room)
    else:
        await rt.emitter.remove_user_from_room(Namespace.NOTIFICATIONS, fan_id, room)
