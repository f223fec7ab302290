"""Roles (fan, creator, moderator, admin), who may change them, creator approval, the audit log.

Routes that need a role call `require_role(identity, "admin")` (or `"moderator", "admin"`);
the role is read from the database on every request, so a change applies at once over HTTP
(a socket keeps the role it connected with until it reconnects).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backchannel.domain import notifications
from backchannel.domain.auth import Identity
from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.persistence import audit, creator_requests, users
from backchannel.persistence.audit import AuditEntry
from backchannel.persistence.creator_requests import CreatorRequest
from backchannel.persistence.database import Connection, Database
from backchannel.persistence.users import Role, User

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


def require_role(identity: Identity, *roles: Role) -> Identity:
    """The identity, if its role is one of `roles`; `forbidden` otherwise."""
    if identity.role not in roles:
        raise Forbidden(f"this needs the {' or '.join(roles)} role")
    return identity


class RoleChange(BaseModel):
    """`POST /admin/users/{id}/role`."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["fan", "creator", "moderator", "admin"]


async def change_role_in(
    conn: Connection, user_id: str, role: Role, *, actor_id: str | None, via: str
) -> User:
    """Set a user's role and audit it, inside the caller's transaction."""
    changed = await users.set_role(conn, user_id, role)
    if changed is None:
        raise NotFound("no such user")
    user, previous = changed
    if previous != role:
        await audit.audit(
            conn,
            "role.changed",
            actor_id=actor_id,
            target_id=user_id,
            details={"from": previous, "to": role, "by": via},
        )
    return user


async def change_role(rt: Runtime, admin: Identity, user_id: str, change: RoleChange) -> User:
    """An admin gives a user a role."""
    require_role(admin, "admin")
    async with rt.db.transaction() as conn:
        return await change_role_in(conn, user_id, change.role, actor_id=admin.user_id, via="api")


async def grant_by_email(db: Database, email: str, role: Role) -> User:
    """`backchannel user grant EMAIL ROLE`."""
    async with db.transaction() as conn:
        user_id = await users.id_by_email(conn, email.strip().lower())
        if user_id is None:
            raise NotFound(f"no active user with email {email}")
        return await change_role_in(conn, user_id, role, actor_id=None, via="cli")


async def revoke_by_email(db: Database, email: str, role: Role) -> User:
    """`backchannel user revoke EMAIL ROLE`: back to fan, if the user holds that role."""
    async with db.transaction() as conn:
        user_id = await users.id_by_email(conn, email.strip().lower())
        user = await users.get_active_user(conn, user_id) if user_id else None
        if user is None:
            raise NotFound(f"no active user with email {email}")
        if user.role != role:
            raise Invalid(f"{email} is {user.role}, not {role}")
        return await change_role_in(conn, user.id, "fan", actor_id=None, via="cli")


# -- creator requests ------------------------------------------------------------------------


class CreatorRequestPage(BaseModel):
    """`GET /admin/creator-requests`."""

    items: list[CreatorRequest]
    next_cursor: str | None


class CreatorRequestQuery(BaseModel):
    """`?status=&cursor=&limit=`."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["pending", "approved", "rejected"] = "pending"
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


def _encode_cursor(request: CreatorRequest) -> str:
    raw = f"{request.created_at.isoformat()}|{request.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("invalid cursor", [{"field": "cursor", "message": "unknown"}]) from None


async def list_creator_requests(
    rt: Runtime, admin: Identity, q: CreatorRequestQuery
) -> CreatorRequestPage:
    """Creator requests in a status, oldest first."""
    require_role(admin, "admin")
    after = _decode_cursor(q.cursor) if q.cursor else None
    async with rt.db.connection() as conn:
        rows = await creator_requests.page(conn, q.status, after=after, limit=q.limit + 1)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return CreatorRequestPage(
        items=rows, next_cursor=_encode_cursor(rows[-1]) if more and rows else None
    )


async def decide_creator_request(
    rt: Runtime, admin: Identity, request_id: str, *, approve: bool
) -> CreatorRequest:
    """Approve (the user becomes a creator) or reject; the user is notified live."""
    require_role(admin, "admin")
    try:
        rid = uuid.UUID(request_id)
    except ValueError:
        raise NotFound("no such pending creator request") from None
    async with rt.db.transaction() as conn:
        decided = await creator_requests.decide(
            conn, rid, "approved" if approve else "rejected", admin.user_id
        )
        if decided is None:
            raise NotFound("no such pending creator request")
        if approve:
            await change_role_in(
                conn, decided.user_id, "creator", actor_id=admin.user_id, via="creator request"
            )
        await audit.audit(
            conn,
            "creator_request.approved" if approve else "creator_request.rejected",
            actor_id=admin.user_id,
            target_id=decided.user_id,
            details={"request_id": str(rid)},
        )
        staged = await notifications.notify_in(
            conn,
            [decided.user_id],
            "creator_request.approved" if approve else "creator_request.rejected",
            "You are now a creator" if approve else "Your creator request was declined",
            data={"request_id": str(rid), "status": decided.status},
        )
    await staged.deliver(rt)
    return decided


# -- the audit log ---------------------------------------------------------------------------


class AuditQuery(BaseModel):
    """`?cursor=&actor_id=&action=&limit=`."""

    model_config = ConfigDict(extra="ignore")
    cursor: Annotated[int, Field(ge=1, le=2**62)] | None = None
    actor_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    action: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class AuditPage(BaseModel):
    """`GET /admin/audit`: newest first."""

    items: list[AuditEntry]
    next_cursor: str | None


async def audit_log(rt: Runtime, admin: Identity, q: AuditQuery) -> AuditPage:
    """Audit entries, newest first; `next_cursor` continues with older ones."""
    require_role(admin, "admin")
    async with rt.db.connection() as conn:
        rows = await audit.page(
            conn, before_id=q.cursor, actor_id=q.actor_id, action=q.action, limit=q.limit + 1
        )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return AuditPage(items=rows, next_cursor=str(rows[-1].id) if more and rows else None)
