"""Bans: a moderator or admin shuts a user out at once, everywhere, and can lift it.

A ban ends every session of the user (refresh tokens revoked, access tokens refused, every
socket on every node told `session:ended {reason: "banned"}` and disconnected, through the
session revocation channel); while it lasts, logins, refreshes, requests and connects answer
`forbidden` with `details.reason: "banned"` and `until`. With `delete_messages`, everything the
user sent becomes a tombstone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from backchannel.domain import message_edits, webhook_events
from backchannel.domain.auth import BANNED, Identity
from backchannel.domain.roles import require_role
from backchannel.domain.sessions import end_sessions
from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.persistence import audit, bans, conversations, messages, users
from backchannel.persistence.bans import Ban
from backchannel.persistence.messages import StoredMessage
from backchannel.server.revocations import user_revocation

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class BanRequest(BaseModel):
    """`POST /admin/users/{id}/ban`."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=500)
    ]
    until: AwareDatetime | None = None
    delete_messages: bool = False


class BanView(BaseModel):
    """A ban."""

    user_id: str
    reason: str
    until: datetime | None
    banned_by: str | None
    created_at: datetime
    deleted_messages: int = 0

    @classmethod
    def of(cls, ban: Ban, deleted: int = 0) -> BanView:
        """The wire view of a stored ban."""
        return cls(
            user_id=ban.user_id,
            reason=ban.reason,
            until=ban.until,
            banned_by=ban.banned_by,
            created_at=ban.created_at,
            deleted_messages=deleted,
        )


async def ban_user(rt: Runtime, moderator: Identity, user_id: str, request: BanRequest) -> BanView:
    """Ban a user now: sessions ended, sockets closed on every node, maybe messages deleted."""
    require_role(moderator, "moderator", "admin")
    if user_id == moderator.user_id:
        raise Invalid("you cannot ban yourself", [{"field": "user_id", "message": "self"}])
    if request.until is not None and request.until <= datetime.now(UTC):
        raise Invalid("until is in the past", [{"field": "until", "message": "in the past"}])
    deleted: list[tuple[int, int, int]] = []
    async with rt.db.transaction() as conn:
        target = await users.get_active_user(conn, user_id)
        if target is None:
            raise NotFound("no such user")
        if target.role == "admin" and moderator.role != "admin":
            raise Forbidden("only an admin bans an admin")
        ban = await bans.upsert_ban(conn, user_id, request.reason, request.until, moderator.user_id)
        if request.delete_messages:
            deleted = await messages.tombstone_all_of(conn, user_id)
        await audit.audit(
            conn,
            "user.banned",
            actor_id=moderator.user_id,
            target_id=user_id,
            details={
                "reason": request.reason,
                "until": request.until.isoformat() if request.until else None,
                "deleted_messages": len(deleted),
            },
        )
        recorded = await webhook_events.record(
            rt,
            conn,
            [
                webhook_events.event(
                    webhook_events.USER_BANNED,
                    {
                        "user_id": user_id,
                        "reason": request.reason,
                        "until": request.until.isoformat() if request.until else None,
                        "banned_by": moderator.user_id,
                        "deleted_messages": len(deleted),
                    },
                )
            ],
        )
    if recorded:
        webhook_events.wake(rt)
    await end_sessions(rt, user_id, None, BANNED, actor_id=moderator.user_id)
    # Sockets whose token names no session (an identity provider's) end by user; the others
    # have already gone with their sessions.
    await rt.revocations.ended([user_revocation(user_id)], BANNED)
    if deleted:
        await _announce_tombstones(rt, deleted)
    return BanView.of(ban, len(deleted))


async def _announce_tombstones(rt: Runtime, deleted: list[tuple[int, int, int]]) -> None:
    members: dict[int, list[str]] = {}
    async with rt.db.connection() as conn:
        for conversation_id in {c for _, c, _ in deleted}:
            row = await conversations.get_conversation(conn, conversation_id)
            members[conversation_id] = row.participant_ids if row else []
    for message_id, conversation_id, seq in deleted:
        stub = StoredMessage(
            id=message_id,
            conversation_id=conversation_id,
            seq=seq,
            sender_id="",
            client_id="",
            body=None,
            media=[],
            price_cents=None,
            currency="usd",
            preview_text=None,
            broadcast_id=None,
            created_at=datetime.now(UTC),
        )
        await message_edits.announce_deleted(rt, stub, members[conversation_id], set())


async def unban_user(rt: Runtime, moderator: Identity, user_id: str) -> None:
    """Lift a ban: the user may log in again."""
    require_role(moderator, "moderator", "admin")
    async with rt.db.transaction() as conn:
        lifted = await bans.delete_ban(conn, user_id)
        if lifted is None:
            raise NotFound("this user is not banned")
        await audit.audit(conn, "user.unbanned", actor_id=moderator.user_id, target_id=user_id)
