"""Messaging: send, read, sync and page through history (conversations: `conversations.py`).

Both transports call these. Every operation checks membership itself; every live event is
emitted after the transaction that it announces has committed, and every message that leaves
goes through `render_for_viewer`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StringConstraints,
)

from backchannel.domain import (
    blocks,
    broadcasts,
    dm_rules,
    notifications,
    screening,
    webhook_events,
)
from backchannel.domain.chat_views import (
    HistoryPage,
    Message,
    ReadState,
    SyncPage,
    render_for_viewer,
)
from backchannel.domain.event_models import ReadReceipt
from backchannel.domain.media import MediaRef, attach_media, pick_media
from backchannel.errors import Conflict, Invalid, NotFound
from backchannel.inputs import require_https
from backchannel.media.links import MediaLinks
from backchannel.outage_log import report
from backchannel.persistence import conversations, messages
from backchannel.persistence.conversations import ConversationRow
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import StoredMessage
from backchannel.rooms.membership import check_price, others, require_member
from backchannel.rooms.names import Namespace
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 4000
MAX_MEDIA = 10
SYNC_PAGE_DEFAULT, SYNC_PAGE_MAX = 100, 200
HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 50, 200

Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
Title = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, max_length=200)]
Seq = Annotated[StrictInt, Field(ge=0)]


class MediaIn(BaseModel):
    """An attachment: an http(s) URL and a type such as `image` or `video/mp4`."""

    model_config = ConfigDict(extra="forbid")
    url: Annotated[AnyHttpUrl, Field(max_length=2048)]
    type: Annotated[
        str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9.+/-]{0,63}$")
    ]


# An uploaded item by id, or an external `{url, type}` (free messages and content only).
AttachmentIn = Annotated[
    MediaRef | MediaIn,
    PlainValidator(pick_media(MediaIn), json_schema_input_type=MediaRef | MediaIn),
]


class SendMessage(BaseModel):
    """`message:send`. `preview_text` (an extension) is the teaser a paid message shows."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: Id
    client_id: Id
    body: (
        Annotated[
            str, StringConstraints(strict=True, strip_whitespace=True, max_length=MAX_BODY_CHARS)
        ]
        | None
    ) = None
    media: Annotated[list[AttachmentIn], Field(max_length=MAX_MEDIA)] = []
    price_cents: StrictInt | None = None
    currency: Annotated[
        str, StringConstraints(strict=True, to_lower=True, pattern=r"^[A-Za-z]{3}$")
    ] = "usd"
    preview_text: Annotated[str, StringConstraints(strict=True, max_length=280)] | None = None


class MarkRead(BaseModel):
    """`message:read`."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: Id
    seq: Seq


class SyncMessages(BaseModel):
    """`messages:sync`."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: Id
    after_seq: Seq
    limit: Annotated[StrictInt, Field(ge=1, le=SYNC_PAGE_MAX)] = SYNC_PAGE_DEFAULT


class HistoryQuery(BaseModel):
    """`GET /conversations/{id}/messages?before_seq=&limit=` (newest first)."""

    model_config = ConfigDict(extra="forbid")
    before_seq: Annotated[int, Field(ge=1, le=(1 << 63) - 1)] | None = None
    limit: Annotated[int, Field(ge=1, le=HISTORY_PAGE_MAX)] = HISTORY_PAGE_DEFAULT


@contextmanager
def best_effort(event: str) -> Iterator[None]:
    """Live delivery after a commit: a failure (Redis down) is logged, never a failed ack.

    What was committed stays committed; clients catch up with `messages:sync`.
    """
    try:
        yield
    except Exception as exc:
        report(log, f"live delivery of {event}", exc)


_DIGITS = re.compile(r"^[0-9]{1,18}$")


def is_id(text: str) -> bool:
    """Whether `text` is the wire form of a stored id."""
    return _DIGITS.match(text) is not None


def parse_id(value: str | int, what: str = "conversation") -> int:
    """A stored id from its wire form; anything that cannot be one is simply not found."""
    text = str(value)
    if not is_id(text):
        raise NotFound(f"no such {what}")
    return int(text)


async def member_conversation(
    conn: Connection, conversation_id: int, user_id: str
) -> ConversationRow:
    """The conversation, if `user_id` is in it: `not_found` / `forbidden` otherwise."""
    row = await conversations.get_conversation(conn, conversation_id)
    require_member(row is not None, row.participant_ids if row else (), user_id)
    assert row is not None
    return row


# -- messages --------------------------------------------------------------------------------


async def send_message(rt: Runtime, user_id: str, role: str, request: SendMessage) -> Message:
    """Store a message with the next seq, then deliver it; a retried `client_id` replays."""
    body = request.body or None
    if body is None and not request.media:
        raise Invalid("a message needs a body or media", [{"field": "body", "message": "empty"}])
    check_price(role, request.price_cents)
    require_https(
        [
            (f"media.{i}.url", str(m.url))
            for i, m in enumerate(request.media)
            if not isinstance(m, MediaRef)
        ],
        dev=rt.settings.env == "dev",
    )
    conversation_id = parse_id(request.conversation_id)
    await rt.limiter.hit(f"message:send:{user_id}", Rate.parse(rt.settings.message_rate_limit))
    # Who may message whom (a DM's rule, maybe a price), then the filters and the platform's
    # moderation hook; none of them inside a transaction.
    charge = await dm_rules.check_send(rt, user_id, role, conversation_id)
    preview_text = request.preview_text if request.price_cents is not None else None
    screened = await screening.screen_message(
        rt,
        user_id,
        conversation_id,
        body=body,
        preview_text=preview_text,
        media=[m.model_dump(mode="json") for m in request.media],
        price_cents=request.price_cents,
    )

    media = await attach_media(rt, user_id, request.media, paid=request.price_cents is not None)
    new = messages.NewMessage(
        conversation_id=conversation_id,
        sender_id=user_id,
        client_id=request.client_id,
        body=screened.body,
        media=media,
        price_cents=request.price_cents,
        currency=request.currency,
        preview_text=screened.preview_text,
    )
    earlier = None
    try:
        if charge is not None:
            # A paid DM: the message and its payment in one transaction.
            appended = await dm_rules.append_paid(rt, new, charge)
        else:
            # One statement in the common case: membership, blocks, the client_id check, the
            # seq and the row, shared with whatever other sends are being written (group
            # commit).
            appended = await rt.appender.append(new)
        if appended is None:
            # Unknown conversation or not a member (raises), a retried client_id, else a
            # direct conversation with a block in it.
            async with rt.db.connection() as conn:
                conversation = await member_conversation(conn, conversation_id, user_id)
                earlier = await messages.find_by_client_id(conn, user_id, request.client_id)
                if earlier is None and conversation.kind == "direct":
                    other = others(conversation.participant_ids, user_id)
                    if other:
                        await blocks.refuse_direct(conn, user_id, other[0])
            if earlier is None:
                raise Conflict("the message could not be stored; retry it")
    except Conflict:
        # A concurrent retry of the same client_id committed first: its message is the answer.
        async with rt.db.connection() as conn:
            earlier = await messages.find_by_client_id(conn, user_id, request.client_id)
        if earlier is None:
            raise
    if earlier is not None:
        return _replay(earlier, conversation_id, user_id, rt.media_links)
    assert appended is not None
    stored, participant_ids = appended
    # The ack and every socket of every participant get this one rendering (free messages).
    sender_view = render_for_viewer(stored, user_id, rt.media_links)
    await _after_send(rt, stored, participant_ids, sender_view)
    if screened.flags:
        with best_effort("filter report"):
            await screening.flag_message(rt, stored, screened.flags)
    return sender_view


def _replay(
    earlier: StoredMessage, conversation_id: int, user_id: str, links: MediaLinks
) -> Message:
    if earlier.conversation_id != conversation_id:
        raise Conflict(
            "client_id already used for a message in another conversation",
            [{"field": "client_id", "message": "use a new client_id for a new message"}],
        )
    return render_for_viewer(earlier, user_id, links)


async def _after_send(
    rt: Runtime, stored: StoredMessage, participant_ids: list[str], sender_view: Message
) -> None:
    """Everything that follows a committed send; the one place to hook further deliveries."""
    with best_effort("message:new"):
        await _deliver_message(rt, stored, participant_ids, sender_view)
    with best_effort("message notification"):
        # Recipients with no /chat socket open anywhere get (or have updated) a notification.
        await notifications.notify_chat_message(
            rt, stored, others(participant_ids, stored.sender_id)
        )


async def _deliver_message(
    rt: Runtime, stored: StoredMessage, participant_ids: list[str], sender_view: Message
) -> None:
    if stored.price_cents is None:
        # Every socket of every participant, the sending one included, in one emit.
        await rt.emitter.to_users(Namespace.CHAT, participant_ids, "message:new", sender_view)
    else:
        await rt.emitter.to_user(Namespace.CHAT, stored.sender_id, "message:new", sender_view)
        # A message just stored has no unlocks: every recipient gets the same locked view
        # (rendered for no one in particular, which is never the sender).
        locked = render_for_viewer(stored, "", rt.media_links)
        recipients = others(participant_ids, stored.sender_id)
        await rt.emitter.to_users(Namespace.CHAT, recipients, "message:new", locked)


async def get_message_for(
    rt: Runtime, conn: Connection, message_id: str | int, viewer_id: str
) -> Message:
    """One message as `viewer_id` sees it now (whole once unlocked); for other domains."""
    stored = await messages.get_for_viewer(conn, parse_id(message_id, "message"), viewer_id)
    if stored is None:
        raise NotFound("no such message")
    await member_conversation(conn, stored.conversation_id, viewer_id)
    return render_for_viewer(stored, viewer_id, rt.media_links)


async def mark_read(
    rt: Runtime, user_id: str, request: MarkRead, *, origin_sid: str | None = None
) -> ReadState:
    """Move the reader's pointer forward and tell the other participants."""
    conversation_id = parse_id(request.conversation_id)
    async with rt.db.transaction() as conn:
        conversation = await member_conversation(conn, conversation_id, user_id)
        moved = await conversations.advance_read(conn, conversation_id, user_id, request.seq)
        if moved is None:
            raise NotFound("no such conversation")
        before, after = moved
        unread = await messages.count_unread(conn, conversation_id, after, user_id)
        recorded = after > before and await webhook_events.record(
            rt,
            conn,
            [
                webhook_events.event(
                    webhook_events.MESSAGE_READ,
                    {
                        "conversation_id": str(conversation_id),
                        "user_id": user_id,
                        "seq": after,
                        "unread_count": unread,
                    },
                )
            ],
        )
    if recorded:
        webhook_events.wake(rt)
    if after > before:
        receipt = ReadReceipt(conversation_id=str(conversation_id), user_id=user_id, seq=after)
        # The other participants, and the reader's other devices (so their badges clear).
        with best_effort("message:read"):
            await rt.emitter.to_users(
                Namespace.CHAT,
                conversation.participant_ids,
                "message:read",
                receipt,
                skip_sid=origin_sid,
            )
        if unread == 0:
            # Caught up: the conversation's `message` notification is read as well.
            with best_effort("message notification read"):
                await notifications.chat_conversation_read(rt, user_id, conversation_id)
    return ReadState(conversation_id=str(conversation_id), seq=after, unread_count=unread)


async def sync_messages(rt: Runtime, user_id: str, request: SyncMessages) -> SyncPage:
    """Everything after `after_seq`, oldest first, a page at a time."""
    conversation_id = parse_id(request.conversation_id)
    await broadcasts.settle_for_viewer(rt, user_id)
    async with rt.db.connection() as conn:
        await member_conversation(conn, conversation_id, user_id)
        rows = await messages.after_seq(
            conn, conversation_id, user_id, request.after_seq, request.limit + 1
        )
    page = rows[: request.limit]
    return SyncPage(
        items=[render_for_viewer(m, user_id, rt.media_links) for m in page],
        has_more=len(rows) > request.limit,
    )


async def history(
    rt: Runtime, user_id: str, conversation_id_text: str, request: HistoryQuery
) -> HistoryPage:
    """Messages before `before_seq` (or the newest), newest first."""
    conversation_id = parse_id(conversation_id_text)
    before = request.before_seq if request.before_seq is not None else 2**62
    await broadcasts.settle_for_viewer(rt, user_id)
    async with rt.db.connection() as conn:
        await member_conversation(conn, conversation_id, user_id)
        rows = await messages.before_seq(conn, conversation_id, user_id, before, request.limit + 1)
    page = rows[: request.limit]
    next_cursor = str(page[-1].seq) if len(rows) > request.limit else None
    return HistoryPage(
        items=[render_for_viewer(m, user_id, rt.media_links) for m in page], next_cursor=next_cursor
    )
