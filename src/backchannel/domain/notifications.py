"""Notifications: stored first, then delivered live; synced, counted and marked read.

Other features notify users through two calls:

- `await notify(rt, user_ids, type, title, body=None, data=None, dedupe_key=None,
  collapse_key=None) -> PublishResult` stores in its own transaction and delivers.
- `staged = await notify_in(conn, user_ids, type, title, ...)` stores inside the caller's
  transaction; after that transaction commits, `await staged.deliver(rt)` delivers live.
  (A rolled-back transaction took the notification with it; do not deliver then.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from backchannel.errors import Invalid
from backchannel.persistence import notifications as store
from backchannel.persistence import users
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import StoredMessage
from backchannel.persistence.notifications import ReceivedNotification, StoredNotification
from backchannel.rooms.names import Namespace, subscribers_room

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

INTERNAL_PUBLISHER = "backchannel"
MAX_RECIPIENTS = 10_000
MAX_DATA_BYTES = 16_384

TypeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Body = Annotated[str, StringConstraints(max_length=2000)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
NotificationId = Annotated[str, StringConstraints(pattern=r"^\d{1,18}$")]


# -- wire models --------------------------------------------------------------------------


class Notification(BaseModel):
    """A notification as its recipient sees it (`notification` event, sync items)."""

    id: str
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    created_at: datetime
    read: bool = False
    # Extension: a newer notification with the same key replaces the unread older one.
    collapse_key: str | None = None

    @classmethod
    def of(cls, row: StoredNotification | ReceivedNotification) -> Notification:
        """The wire form of a stored notification."""
        return cls(
            id=str(row.id),
            type=row.type,
            title=row.title,
            body=row.body,
            data=row.data,
            created_at=row.created_at,
            read=isinstance(row, ReceivedNotification) and row.read,
            collapse_key=row.collapse_key,
        )


class NotificationContent(BaseModel):
    """What a publisher says: `{type, title, body?, data?}`."""

    model_config = ConfigDict(extra="forbid")
    type: TypeName
    title: Title
    body: Body | None = None
    data: dict[str, Any] | None = None

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_DATA_BYTES:
            raise ValueError(f"at most {MAX_DATA_BYTES} bytes of JSON")
        return value


class Audience(BaseModel):
    """A creator's subscribers (active or trialing)."""

    model_config = ConfigDict(extra="forbid")
    creator_id: UserId
    of: Literal["subscribers"]


class PublishRequest(BaseModel):
    """`POST /publish` and a stream entry's payload: `user_ids` or `audience`, not both."""

    model_config = ConfigDict(extra="forbid")
    user_ids: Annotated[list[UserId], Field(max_length=MAX_RECIPIENTS)] | None = None
    audience: Audience | None = None
    notification: NotificationContent
    dedupe_key: Key | None = None
    collapse_key: Key | None = None

    def check_target(self) -> None:
        """`invalid` unless exactly one of `user_ids` and `audience` is given."""
        if (self.user_ids is None) == (self.audience is None):
            message = "give either user_ids or audience" + (
                ", not both" if self.user_ids is not None else ""
            )
            raise Invalid(
                message,
                [
                    {"field": "user_ids", "message": message},
                    {"field": "audience", "message": message},
                ],
            )


class PublishResult(BaseModel):
    """`202 {id, recipients, skipped?}`: skipped lists user ids that are not known users."""

    id: str
    recipients: int
    skipped: list[str] | None = None

    @classmethod
    def of(cls, row: StoredNotification) -> PublishResult:
        """The result a publish (or its deduplicated repeat) answers with."""
        return cls(id=str(row.id), recipients=row.recipients, skipped=row.skipped or None)


class SyncRequest(BaseModel):
    """`notifications:sync {after?, limit?}` and `GET /notifications?cursor=&limit=`."""

    model_config = ConfigDict(extra="forbid")
    after: NotificationId | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class SyncPage(BaseModel):
    """Notifications after a cursor, oldest first; `next_cursor` is null once caught up."""

    items: list[Notification]
    unread_count: int
    next_cursor: str | None


class ReadRequest(BaseModel):
    """`notifications:read {ids?, all?}`."""

    model_config = ConfigDict(extra="forbid")
    ids: Annotated[list[NotificationId], Field(max_length=1000)] | None = None
    all: bool = False

    def check(self) -> None:
        """`invalid` unless ids or all is given."""
        if not self.all and self.ids is None:
            raise Invalid(
                "give ids or all: true", [{"field": "ids", "message": "ids or all is required"}]
            )


class UnreadCount(BaseModel):
    """`{unread_count}`."""

    unread_count: int


class Preferences(BaseModel):
    """`GET/PUT /notifications/preferences`: muted types are stored but not pushed live."""

    model_config = ConfigDict(extra="forbid")
    muted_types: Annotated[list[TypeName], Field(max_length=200)]


# -- storing and delivering -----------------------------------------------------------------


@dataclass
class Staged:
    """A notification stored in a transaction; `deliver` once that transaction has committed."""

    result: PublishResult
    notification: Notification | None = None
    recipients: list[str] = field(default_factory=list)
    # Recipients whose unread notification with the same collapse key was replaced.
    replaced: set[str] = field(default_factory=set)
    audience_of: str | None = None

    async def deliver(self, rt: Runtime) -> None:
        """Push it live to every socket of each recipient; never raises (it is stored)."""
        rt.metrics.notifications.labels(
            "deduplicated" if self.notification is None else "stored"
        ).inc()
        rt.metrics.notification_receipts.inc(len(self.recipients))
        if self.notification is None or not self.recipients:
            return  # a deduplicated repeat, or nobody to tell
        try:
            await _deliver(rt, self)
        except Exception:
            log.exception("live delivery failed; recipients will get it on sync")


async def _deliver(rt: Runtime, staged: Staged) -> None:
    notification = staged.notification
    assert notification is not None
    recipients = staged.recipients
    push_counts = len(recipients) <= rt.settings.notification_unread_push_max
    async with rt.db.connection() as conn:
        muted = await store.muted_among(conn, recipients, notification.type)
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
        await emitter.to_user(ns, user_id, "notifications:unread", {"count": count})


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
    wanted = list(dict.fromkeys(user_ids))
    known = await store.known_user_ids(conn, wanted) if wanted else set()
    recipients = [uid for uid in wanted if uid in known]
    skipped = [uid for uid in wanted if uid not in known]
    return await _store(
        conn,
        recipients,
        skipped,
        NotificationContent(type=type, title=title, body=body, data=data),
        dedupe_key=dedupe_key,
        collapse_key=collapse_key,
        publisher=publisher,
    )


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
    row = await store.insert_notification(
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
    if row is None:
        assert dedupe_key is not None
        first = await store.get_by_dedupe(conn, publisher, dedupe_key)
        assert first is not None  # the conflicting row has committed: the insert waited for it
        return Staged(result=PublishResult.of(first))
    replaced: set[str] = set()
    if recipients:
        if collapse_key is not None:
            replaced = await store.take_collapsed(conn, recipients, collapse_key)
        await store.insert_receipts(conn, row.id, recipients, collapse_key)
    return Staged(
        result=PublishResult.of(row),
        notification=Notification.of(row),
        recipients=recipients,
        replaced=replaced,
    )


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
    await staged.deliver(rt)
    return staged.result


async def publish(rt: Runtime, publisher: str, request: PublishRequest) -> PublishResult:
    """`POST /publish` and the stream: store for every recipient at once, then deliver."""
    request.check_target()
    content = request.notification
    async with rt.db.transaction() as conn:
        if request.audience is not None:
            creator = await users.get_active_user(conn, request.audience.creator_id)
            if creator is None or creator.role != "creator":
                raise Invalid(
                    "no such creator",
                    [{"field": "audience.creator_id", "message": "not a known creator"}],
                )
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
    await staged.deliver(rt)
    return staged.result


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
        await rt.emitter.to_user(
            Namespace.NOTIFICATIONS, user_id, "notifications:unread", {"count": unread}
        )


def _conversation_key(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


# -- the recipient's side -------------------------------------------------------------------


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
            await rt.emitter.to_user(
                Namespace.NOTIFICATIONS, user_id, "notifications:unread", {"count": unread}
            )
        except Exception:
            log.exception("unread count push failed")
    return UnreadCount(unread_count=unread)


async def get_preferences(rt: Runtime, user_id: str) -> Preferences:
    """The user's muted notification types."""
    async with rt.db.connection() as conn:
        return Preferences(muted_types=await store.get_muted_types(conn, user_id))


async def set_preferences(rt: Runtime, user_id: str, preferences: Preferences) -> Preferences:
    """Replace the user's muted notification types."""
    types = list(dict.fromkeys(preferences.muted_types))
    async with rt.db.transaction() as conn:
        return Preferences(muted_types=await store.set_muted_types(conn, user_id, types))


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
