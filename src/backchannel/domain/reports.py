"""Reports: anyone reports what they can see; moderators work the queue and act on it.

`sexual_minors` and `non_consensual` reports are urgent and come first in the queue. A
moderator resolves a report by dismissing it, deleting the reported message (a tombstone for
everyone) or banning the user behind it; every resolution is in the audit log.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backchannel.domain import bans, message_edits, webhook_events
from backchannel.domain.auth import Identity
from backchannel.domain.chat import member_conversation, parse_id
from backchannel.domain.roles import require_role
from backchannel.errors import Conflict, Forbidden, Invalid, NotFound
from backchannel.persistence import audit, messages, reports, users
from backchannel.persistence import content as content_store
from backchannel.persistence.database import Connection
from backchannel.persistence.messages import StoredMessage
from backchannel.persistence.reports import Report

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

TargetType = Literal["message", "user", "conversation", "content"]
Reason = Literal[
    "spam",
    "harassment",
    "hate",
    "sexual_minors",
    "non_consensual",
    "impersonation",
    "other",
]
URGENT_REASONS = frozenset({"sexual_minors", "non_consensual"})
HISTORY = 20
Note = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, max_length=2000)]


class ReportTarget(BaseModel):
    """What is reported."""

    model_config = ConfigDict(extra="forbid")
    type: TargetType
    id: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]


class ReportRequest(BaseModel):
    """`POST /reports`."""

    model_config = ConfigDict(extra="forbid")
    target: ReportTarget
    reason: Reason
    note: Note | None = None


class ReportCreated(BaseModel):
    """The answer to a report: its id and status (a repeat answers the first report)."""

    id: str
    status: str


class StoredMessageView(BaseModel):
    """A message exactly as stored, for moderators (paid or deleted content included)."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    body: str | None
    media: list[dict[str, Any]]
    price_cents: int | None
    currency: str
    preview_text: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None

    @classmethod
    def of(cls, m: StoredMessage) -> StoredMessageView:
        """The moderator's view of a stored message."""
        return cls(
            id=str(m.id),
            conversation_id=str(m.conversation_id),
            seq=m.seq,
            sender_id=m.sender_id,
            body=m.body,
            media=m.media,
            price_cents=m.price_cents,
            currency=m.currency,
            preview_text=m.preview_text,
            created_at=m.created_at,
            edited_at=m.edited_at,
            deleted_at=m.deleted_at,
            deleted_by=m.deleted_by,
        )


class Reporter(BaseModel):
    """Who reported (null: the content filters)."""

    user_id: str
    display_name: str | None


class ReportView(BaseModel):
    """A report in the moderators' queue."""

    id: str
    target: dict[str, str]
    reason: str
    note: str | None
    urgent: bool
    status: str
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime
    reporter: Reporter | None
    message: StoredMessageView | None = None
    recent_history: list[StoredMessageView] = []


class ReportPage(BaseModel):
    """`GET /admin/reports`: urgent first, then oldest first."""

    items: list[ReportView]
    next_cursor: str | None


class ReportQuery(BaseModel):
    """`?status=&cursor=&limit=`."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["open", "resolved"] | None = None
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class ResolveRequest(BaseModel):
    """`POST /admin/reports/{id}/resolve`."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["dismiss", "delete_message", "ban_user"]
    note: Note | None = None


async def _check_visible(conn: Connection, reporter_id: str, target: ReportTarget) -> str | None:
    """`not_found`/`forbidden` unless the reporter can see the target; returns the user behind
    it when there is one."""
    if target.type == "message":
        stored = await messages.get_for_viewer(conn, parse_id(target.id, "message"), reporter_id)
        if stored is None:
            raise NotFound("no such message")
        await member_conversation(conn, stored.conversation_id, reporter_id)
        return stored.sender_id
    if target.type == "conversation":
        await member_conversation(conn, parse_id(target.id), reporter_id)
        return None
    if target.type == "user":
        if target.id == reporter_id:
            raise Invalid("you cannot report yourself", [{"field": "target.id", "message": "self"}])
        if await users.get_active_user(conn, target.id) is None:
            raise NotFound("no such user")
        return target.id
    # Content: anyone sees at least its teaser.
    item = await content_store.get(conn, parse_id(target.id, "content"))
    if item is None:
        raise NotFound("no such content")
    return item.creator_id


async def create_report(
    rt: Runtime, reporter_id: str, request: ReportRequest
) -> tuple[ReportCreated, bool]:
    """Report something the caller can see; (the report, whether it is new)."""
    async with rt.db.transaction() as conn:
        await _check_visible(conn, reporter_id, request.target)
        report, created = await reports.insert_report(
            conn,
            reporter_id=reporter_id,
            target_type=request.target.type,
            target_id=request.target.id,
            reason=request.reason,
            note=request.note,
            urgent=request.reason in URGENT_REASONS,
        )
        # A repeat is the same report, not a new event.
        recorded = created and await webhook_events.record(
            rt, conn, [webhook_events.report_created(report)]
        )
    if recorded:
        webhook_events.wake(rt)
    return ReportCreated(id=str(report.id), status=report.status), created


def _encode_cursor(report: Report) -> str:
    return base64.urlsafe_b64encode(f"{int(report.urgent)}|{report.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[bool, int]:
    try:
        urgent, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        number = int(rid)
        if urgent not in ("0", "1") or not 0 < number < 2**63:
            raise ValueError("out of range")
        return urgent == "1", number
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("bad cursor", [{"field": "cursor", "message": "use a next_cursor"}]) from None


async def _view(conn: Connection, report: Report) -> ReportView:
    reporter = None
    if report.reporter_id is not None:
        who = await users.get_active_user(conn, report.reporter_id)
        reporter = Reporter(
            user_id=report.reporter_id, display_name=who.display_name if who else None
        )
    view = ReportView(
        id=str(report.id),
        target={"type": report.target_type, "id": report.target_id},
        reason=report.reason,
        note=report.note,
        urgent=report.urgent,
        status=report.status,
        resolution=report.resolution,
        resolved_by=report.resolved_by,
        resolved_at=report.resolved_at,
        created_at=report.created_at,
        reporter=reporter,
    )
    history: list[StoredMessage] = []
    if report.target_type == "message" and report.target_id.isdigit():
        stored = await messages.get_for_viewer(conn, int(report.target_id), "")
        if stored is not None:
            view.message = StoredMessageView.of(stored)
            history = await messages.recent_until(conn, stored.conversation_id, stored.seq, HISTORY)
    elif report.target_type == "conversation" and report.target_id.isdigit():
        history = await messages.recent_until(conn, int(report.target_id), 2**62, HISTORY)
    elif report.target_type == "user":
        history = await messages.recent_by_sender(conn, report.target_id, HISTORY)
    view.recent_history = [StoredMessageView.of(m) for m in history]
    return view


async def list_reports(rt: Runtime, moderator: Identity, q: ReportQuery) -> ReportPage:
    """The queue: urgent reports first, then oldest first."""
    require_role(moderator, "moderator", "admin")
    after = _decode_cursor(q.cursor) if q.cursor else None
    async with rt.db.connection() as conn:
        rows = await reports.page(conn, q.status, after, q.limit + 1)
        page = rows[: q.limit]
        items = [await _view(conn, r) for r in page]
    more = len(rows) > q.limit
    return ReportPage(items=items, next_cursor=_encode_cursor(page[-1]) if more else None)


async def resolve_report(
    rt: Runtime, moderator: Identity, report_id_text: str, request: ResolveRequest
) -> ReportView:
    """Dismiss, delete the reported message, or ban the user behind the report."""
    require_role(moderator, "moderator", "admin")
    report_id = parse_id(report_id_text, "report")
    deleted = None
    ban_target: str | None = None
    async with rt.db.transaction() as conn:
        report = await reports.lock_report(conn, report_id)
        if report is None:
            raise NotFound("no such report")
        if report.status != "open":
            raise Conflict("this report is already resolved")
        if request.action == "delete_message":
            if report.target_type != "message":
                raise Invalid(
                    "only a reported message can be deleted",
                    [{"field": "action", "message": f"the target is a {report.target_type}"}],
                )
            deleted = await message_edits.tombstone_in(
                conn, moderator.user_id, "moderator", parse_id(report.target_id, "message")
            )
        elif request.action == "ban_user":
            ban_target = await _user_behind(conn, report)
            target = await users.get_active_user(conn, ban_target)
            if target is None:
                raise NotFound("the user behind this report is gone")
            if target.role == "admin" and moderator.role != "admin":
                raise Forbidden("only an admin bans an admin")
        resolved = await reports.resolve(conn, report_id, request.action, moderator.user_id)
        await audit.audit(
            conn,
            "report.resolved",
            actor_id=moderator.user_id,
            target_id=report.target_id,
            details={"report_id": str(report_id), "action": request.action, "note": request.note},
        )
        view = await _view(conn, resolved)
    if deleted is not None:
        await message_edits.announce_deleted(rt, *deleted)
    if ban_target is not None:
        await bans.ban_user(
            rt,
            moderator,
            ban_target,
            bans.BanRequest(reason=f"report {report_id}: {report.reason}"),
        )
    return view


async def _user_behind(conn: Connection, report: Report) -> str:
    if report.target_type == "user":
        return report.target_id
    if report.target_type == "message" and report.target_id.isdigit():
        stored = await messages.get_for_viewer(conn, int(report.target_id), "")
        if stored is not None:
            return stored.sender_id
    if report.target_type == "content" and report.target_id.isdigit():
        item = await content_store.get(conn, int(report.target_id))
        if item is not None:
            return item.creator_id
    raise Invalid(
        "no single user is behind this report",
        [{"field": "action", "message": f"the target is a {report.target_type}"}],
    )
