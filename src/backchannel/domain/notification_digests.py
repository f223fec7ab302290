"""Digests: `/publish` with `digest: {key, window_s}` folds a recipient's notifications.

The first notification with a key for a recipient opens a window of `window_s` seconds and
is stored as the recipient's own digest notification (`data: {digest_key, count, items}`);
later ones in the window are added to it (`count` + 1, the newest `KEEP_ITEMS` items, the
newest title and body) and re-sent live with the same id. Its one push is queued for the
window's end, so it says how many arrived. A digest its recipient has read is done: the next
notification opens a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from backchannel.domain.notification_models import (
    Digest,
    Notification,
    NotificationContent,
    PublishResult,
)
from backchannel.domain.notification_push import Staged
from backchannel.persistence import notification_digests as digests
from backchannel.persistence import notifications as store
from backchannel.persistence import push_queue
from backchannel.persistence.database import Connection

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

KEEP_ITEMS = 20


@dataclass
class StagedDigest:
    """Each recipient's digest notification, stored in a transaction; deliver after commit."""

    result: PublishResult
    parts: list[Staged] = field(default_factory=list)

    async def deliver(self, rt: Runtime) -> None:
        """Push each recipient's digest live (never raises) and wake the push worker."""
        for part in self.parts:
            await part.deliver(rt)


async def digest_in(
    conn: Connection,
    recipients: list[str],
    skipped: list[str],
    content: NotificationContent,
    digest: Digest,
    publisher: str,
    dedupe_key: str | None,
) -> StagedDigest:
    """Fold the notification into each recipient's open digest, or open one, in `conn`'s
    transaction. `recipients` must be distinct, known and not blocking the notification's actor.

    The publish itself is recorded as a notification without receipts (its `id` is the
    answer's, its `dedupe_key` makes a repeat answer the same and fold nothing); each
    recipient's digest is a notification of their own.
    """
    record, created = await store.insert_or_first(
        conn,
        type=content.type,
        title=content.title,
        body=content.body,
        data=content.data or {},
        collapse_key=None,
        publisher=publisher,
        dedupe_key=dedupe_key,
        recipients=len(recipients),
        skipped=skipped,
    )
    if not created:
        return StagedDigest(result=PublishResult.of(record))
    item = {
        "title": content.title,
        "body": content.body,
        "data": content.data or {},
        "created_at": datetime.now(UTC).isoformat(),
    }
    parts: list[Staged] = []
    for user_id in recipients:
        open_id = await digests.open_digest(conn, user_id, publisher, digest.key)
        if open_id is not None:
            row = await digests.append_item(
                conn, open_id, content.title, content.body, item, KEEP_ITEMS
            )
            # Still one unread notification: the unread count does not change.
            parts.append(_staged(row, user_id, replaced={user_id}))
            continue
        row_or_none = await store.insert_notification(
            conn,
            type=content.type,
            title=content.title,
            body=content.body,
            data={"digest_key": digest.key, "count": 1, "items": [item]},
            collapse_key=None,
            publisher=publisher,
            dedupe_key=None,
            recipients=1,
            skipped=[],
        )
        assert row_or_none is not None  # no dedupe key, so never a conflict
        await store.insert_receipts(conn, row_or_none.id, [user_id], None)
        await digests.start_digest(
            conn, user_id, publisher, digest.key, row_or_none.id, digest.window_s
        )
        queued = await push_queue.enqueue(conn, row_or_none.id, [user_id], digest.window_s)
        parts.append(_staged(row_or_none, user_id, queued=queued))
    return StagedDigest(result=PublishResult.of(record), parts=parts)


def _staged(
    row: store.StoredNotification,
    user_id: str,
    *,
    replaced: set[str] | None = None,
    queued: int = 0,
) -> Staged:
    return Staged(
        result=PublishResult.of(row),
        notification=Notification.of(row),
        recipients=[user_id],
        replaced=replaced or set(),
        queued_pushes=queued,
    )
