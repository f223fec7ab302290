"""The recipient's side of notifications: sync, mark read, and preferences."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backchannel.domain.notification_models import (
    Notification,
    Preferences,
    ReadRequest,
    SyncPage,
    SyncRequest,
    UnreadCount,
)
from backchannel.domain.notification_push import push_unread
from backchannel.domain.quiet_hours import QuietHours
from backchannel.outage_log import report
from backchannel.persistence import notification_preferences, push_queue
from backchannel.persistence import notifications as store
from backchannel.persistence.notification_preferences import StoredPreferences

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


async def sync(rt: Runtime, user_id: str, request: SyncRequest) -> SyncPage:
    """The user's notifications after a cursor, oldest first, with the unread count."""
    after = int(request.after) if request.after else 0
    async with rt.db.connection() as conn:
        rows = await store.list_after(conn, user_id, after, request.limit + 1)
        unread = await store.unread_count(conn, user_id)
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    return SyncPage(
        items=[Notification.of(row) for row in rows],
        unread_count=unread,
        next_cursor=str(rows[-1].id) if more and rows else None,
    )


async def mark_read(rt: Runtime, user_id: str, request: ReadRequest) -> UnreadCount:
    """Mark some or all read; every socket of the user hears the new count if it changed."""
    request.check()
    ids = None if request.all else [int(i) for i in request.ids or []]
    async with rt.db.transaction() as conn:
        changed = await store.mark_read(conn, user_id, ids) if ids != [] else 0
        unread = await store.unread_count(conn, user_id)
    if changed:
        try:
            await push_unread(rt, user_id, unread)
        except Exception as exc:
            report(log, "unread count push", exc)
    return UnreadCount(unread_count=unread)


async def get_preferences(rt: Runtime, user_id: str) -> Preferences:
    """The user's muted types (live and push) and quiet hours."""
    async with rt.db.connection() as conn:
        stored = await notification_preferences.get_preferences(conn, user_id)
    return _view(stored)


async def set_preferences(rt: Runtime, user_id: str, preferences: Preferences) -> Preferences:
    """Replace the user's preferences; pushes held by quiet hours are looked at again."""
    quiet = preferences.quiet_hours
    wanted = StoredPreferences(
        muted_types=list(dict.fromkeys(preferences.muted_types)),
        push_muted_types=list(dict.fromkeys(preferences.push_muted_types)),
        quiet_hours=quiet.model_dump() if quiet is not None else None,
    )
    async with rt.db.transaction() as conn:
        stored = await notification_preferences.set_preferences(conn, user_id, wanted)
        released = await push_queue.release_held(conn, user_id)
    if released and rt.push_worker is not None:
        rt.push_worker.wake()
    return _view(stored)


def _view(stored: StoredPreferences) -> Preferences:
    quiet = stored.quiet_hours
    return Preferences(
        muted_types=stored.muted_types,
        push_muted_types=stored.push_muted_types,
        quiet_hours=QuietHours.model_validate(quiet) if quiet is not None else None,
    )
