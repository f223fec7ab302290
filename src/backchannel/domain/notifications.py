"""Publishing notifications: stored first, then pushed live; and their retention.

Other features notify users through two calls:

- `await notify(rt, user_ids, type, title, body=None, data=None, dedupe_key=None,
  collapse_key=None) -> PublishResult` stores in its own transaction and delivers.
- `staged = await notify_in(conn, user_ids, type, title, ...)` stores inside the caller's
  transaction; after that transaction commits, `await staged.deliver(rt)` delivers live.
  (A rolled-back transaction took the notification with it; do not deliver then.)

The wire models are in `notification_models`, the live push in `notification_push`, and the
recipient's side (sync, mark read, muted types) in `notification_inbox`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from backchannel.domain import webhook_events
from backchannel.domain.notification_digests import StagedDigest, digest_in
from backchannel.domain.notification_models import (
    Digest,
    Notification,
    NotificationContent,
    PublishRequest,
    PublishResult,
)
from backchannel.domain.notification_push import Staged, push_unread
from backchannel.errors import Invalid
from backchannel.persistence import blocks, conversations, push_queue, users
from backchannel.persistence import notifications as store
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import StoredMessage
from backchannel.persistence.webhooks import NewEvent
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

INTERNAL_PUBLISHER = "backchannel"


async def notify_in(
    conn: Connection,
    user_ids: list[str],
    type: str,
    title: str,
    body: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    collapse_key: str | None = None,
    publisher: str = INTERNAL_PUBLISHER,
) -> Staged:
    """Store a notification to `user_ids` inside the caller's transaction.

    Unknown or deleted users are skipped. Call `deliver(rt)` on the result after commit.
    """
    recipients, skipped = await _known(conn, user_ids)
    return await _store(
        conn,
        recipients,
        skipped,
        NotificationContent(type=type, title=title, body=body, data=data),
        dedupe_key=dedupe_key,
        collapse_key=collapse_key,
        publisher=publisher,
    )


async def _known(conn: Connection, user_ids: list[str]) -> tuple[list[str], list[str]]:
    """(the distinct known users among `user_ids`, the unknown ones), in request order."""
    wanted = list(dict.fromkeys(user_ids))
    known = await store.known_user_ids(conn, wanted) if wanted else set()
    return [uid for uid in wanted if uid in known], [uid for uid in wanted if uid not in known]


async def notify_audience_in(
    conn: Connection,
    creator_id: str,
    type: str,
    title: str,
    body: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    collapse_key: str | None = None,
    publisher: str = INTERNAL_PUBLISHER,
) -> Staged:
    """Store a notification to every active subscriber of `creator_id` (delivered as one emit)."""
    recipients = await store.subscriber_ids(conn, creator_id)
    staged = await _store(
        conn,
        recipients,
        [],
        NotificationContent(type=type, title=title, body=body, data=data),
        dedupe_key=dedupe_key,
        collapse_key=collapse_key,
        publisher=publisher,
    )
    staged.audience_of = creator_id
    return staged


async def _store(
    conn: Connection,
    recipients: list[str],
    skipped: list[str],
    content: NotificationContent,
    *,
    dedupe_key: str | None,
    collapse_key: str | None,
    publisher: str,
) -> Staged:
    recipients = await _unblocked(conn, recipients, content)
    row, created = await store.insert_or_first(
        conn,
        type=content.type,
        title=content.title,
        body=content.body,
        data=content.data or {},
        collapse_key=collapse_key,
        publisher=publisher,
        dedupe_key=dedupe_key,
        recipients=len(recipients),
        skipped=skipped,
    )
    if not created:
        return Staged(result=PublishResult.of(row))
    await webhook_events.record_in(
        conn, [_notification_event(row.id, content, recipients, publisher)]
    )
    replaced: set[str] = set()
    if recipients:
        if collapse_key is not None:
            replaced = await store.take_collapsed(conn, recipients, collapse_key)
        await store.insert_receipts(conn, row.id, recipients, collapse_key)
    # In the same transaction, so a push survives a crash between commit and delivery.
    queued = await push_queue.enqueue(conn, row.id, recipients)
    return Staged(
        result=PublishResult.of(row),
        notification=Notification.of(row),
        recipients=recipients,
        replaced=replaced,
        queued_pushes=queued,
    )


async def _unblocked(
    conn: Connection, recipients: list[str], content: NotificationContent
) -> list[str]:
    # Nothing caused by someone a recipient blocks is stored for them (so never pushed).
    actors = _actors(content.data)
    if actors and recipients:
        blocking = await blocks.blockers_among(conn, recipients, actors)
        recipients = [uid for uid in recipients if uid not in blocking]
    return recipients


async def _digest_in(
    conn: Connection,
    recipients: list[str],
    skipped: list[str],
    content: NotificationContent,
    digest: Digest,
    publisher: str,
    dedupe_key: str | None,
) -> StagedDigest:
    recipients = await _unblocked(conn, recipients, content)
    staged = await digest_in(conn, recipients, skipped, content, digest, publisher, dedupe_key)
    if staged.parts:  # not a repeat of a deduplicated publish: the backend hears of it once
        await webhook_events.record_in(
            conn, [_notification_event(staged.result.id, content, recipients, publisher)]
        )
    return staged


# A `notification.created` names its recipients up to this many (always their count).
WEBHOOK_RECIPIENTS_MAX = 1000


def _notification_event(
    notification_id: Any, content: NotificationContent, recipients: list[str], publisher: str
) -> NewEvent:
    return webhook_events.event(
        webhook_events.NOTIFICATION_CREATED,
        {
            "notification_id": str(notification_id),
            "type": content.type,
            "title": content.title,
            "body": content.body,
            "data": content.data or {},
            "publisher": publisher,
            "recipients": len(recipients),
            "recipient_ids": recipients[:WEBHOOK_RECIPIENTS_MAX],
        },
    )


# The `data` fields that name who caused a notification (a message's sender, a tipper, a
# buyer, or whoever a publisher names as `actor_id`).
ACTOR_FIELDS = ("actor_id", "sender_id", "from_user_id", "buyer_id", "fan_id")


def _actors(data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    return [str(data[key]) for key in ACTOR_FIELDS if isinstance(data.get(key), str | int)]


async def notify(
    rt: Runtime,
    user_ids: list[str],
    type: str,
    title: str,
    body: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    collapse_key: str | None = None,
) -> PublishResult:
    """Store a notification to `user_ids` in its own transaction, then deliver it live."""
    async with rt.db.transaction() as conn:
        staged = await notify_in(
            conn,
            user_ids,
            type,
            title,
            body,
            data,
            dedupe_key=dedupe_key,
            collapse_key=collapse_key,
        )
    webhook_events.wake(rt)
    await staged.deliver(rt)
    return staged.result


async def publish(rt: Runtime, publisher: str, request: PublishRequest) -> PublishResult:
    """`POST /publish` and the stream: store for every recipient at once, then deliver."""
    request.check_target()
    content = request.notification
    staged: Staged | StagedDigest
    async with rt.db.transaction() as conn:
        if request.audience is not None:
            creator = await users.get_active_user(conn, request.audience.creator_id)
            if creator is None or creator.role != "creator":
                raise Invalid(
                    "no such creator",
                    [{"field": "audience.creator_id", "message": "not a known creator"}],
                )
            if request.digest is not None:
                fans = await store.subscriber_ids(conn, creator.id)
                staged = await _digest_in(
                    conn, fans, [], content, request.digest, publisher, request.dedupe_key
                )
            else:
                staged = await notify_audience_in(
                    conn,
                    creator.id,
                    content.type,
                    content.title,
                    content.body,
                    content.data,
                    dedupe_key=request.dedupe_key,
                    collapse_key=request.collapse_key,
                    publisher=publisher,
                )
        elif request.digest is not None:
            recipients, skipped = await _known(conn, request.user_ids or [])
            staged = await _digest_in(
                conn, recipients, skipped, content, request.digest, publisher, request.dedupe_key
            )
        else:
            staged = await notify_in(
                conn,
                request.user_ids or [],
                content.type,
                content.title,
                content.body,
                content.data,
                dedupe_key=request.dedupe_key,
                collapse_key=request.collapse_key,
                publisher=publisher,
            )
    webhook_events.wake(rt)
    await staged.deliver(rt)
    return staged.result


# -- chat messages -----------------------------------------------------------------------------

MESSAGE_TYPE = "message"
_PREVIEW_CHARS = 140


def message_preview(stored: StoredMessage) -> str:
    """What a message notification says of the message; never a paid message's content."""
    if stored.price_cents is not None:
        return "Sent a paid message"
    if stored.body:
        text = " ".join(stored.body.split())
        return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"
    return "Sent an attachment"


async def notify_chat_message(rt: Runtime, stored: StoredMessage, recipients: list[str]) -> None:
    """A `message` notification to recipients with no `/chat` socket open on any node.

    One unread notification per conversation: a newer message replaces the unread one
    (collapse key `conversation:<id>`), so the unread count grows by conversations, not
    messages.
    """
    if not recipients or rt.socket_counts is None:
        return
    reading = await rt.socket_counts.with_open(Namespace.CHAT, recipients)
    away = [uid for uid in recipients if uid not in reading]
    if not away:
        return
    async with rt.db.connection() as conn:
        # A muted conversation stores no `message` notification, so nothing is pushed either.
        muted = await conversations.muted_among(conn, stored.conversation_id, away)
        away = [uid for uid in away if uid not in muted]
        if not away:
            return
        sender = await users.get_active_user(conn, stored.sender_id)
    name = sender.display_name if sender is not None else "Someone"
    await notify(
        rt,
        away,
        MESSAGE_TYPE,
        f"New message from {name}",
        message_preview(stored),
        {
            "conversation_id": str(stored.conversation_id),
            "message_id": str(stored.id),
            "seq": stored.seq,
            "sender_id": stored.sender_id,
        },
        collapse_key=_conversation_key(stored.conversation_id),
    )


async def chat_conversation_read(rt: Runtime, user_id: str, conversation_id: int) -> None:
    """The user read a conversation in `/chat`: its `message` notification is read too."""
    async with rt.db.transaction() as conn:
        changed = await store.mark_collapsed_read(conn, user_id, _conversation_key(conversation_id))
        unread = await store.unread_count(conn, user_id) if changed else 0
    if changed:
        await push_unread(rt, user_id, unread)


def _conversation_key(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


# -- retention ---------------------------------------------------------------------------------


async def prune(rt: Runtime, *, batch: int = 5000, max_batches: int = 100) -> int:
    """Delete notifications older than the retention period, in batches; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(days=rt.settings.notification_retention_days)
    total = 0
    for _ in range(max_batches):
        async with rt.db.transaction() as conn:
            deleted = await store.prune_batch(conn, cutoff, batch)
        if deleted is None:
            break  # another node holds the lock and is pruning
        total += deleted
        if deleted < batch:
            break
    return total
