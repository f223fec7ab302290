"""Data rights: take your data away (export), and leave (deactivate now, erase after a grace).

Erasure removes the personal fields of every profile, turns the messages they sent into
tombstones at their `seq` (conversations stay gap-free), empties their media and content,
pseudonymises their ledger rows (books must balance and be kept), cancels their Stripe
subscriptions, and frees their email for a new account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from backchannel.domain import notifications
from backchannel.domain.auth import Identity, password_matches
from backchannel.domain.chat_views import render_for_viewer
from backchannel.domain.email_codes import check_code
from backchannel.errors import Invalid, NotFound, Unauthorized
from backchannel.media.links import MediaLinks
from backchannel.persistence import account_data, audit, messages, sessions, users
from backchannel.persistence.database import Database

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

_PAGE = 500


class ExportStarted(BaseModel):
    """`POST /accounts/me/export` → 202."""

    export_id: str


class ExportStatus(BaseModel):
    """`GET /accounts/me/exports/{id}`."""

    export_id: str
    status: Literal["pending", "ready", "failed", "expired"]
    download_url: str | None
    created_at: datetime
    expires_at: datetime


class DeleteAccount(BaseModel):
    """`DELETE /accounts/me`: prove it is you, with the password or an emailed code."""

    model_config = ConfigDict(extra="forbid")
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> DeleteAccount:
        if (self.password is None) == (self.code is None):
            raise ValueError("give either password or code")
        return self


class Deleted(BaseModel):
    """What `DELETE /accounts/me` did."""

    deactivated_profile_ids: list[str]
    erase_after: datetime | None
    erased: bool


# -- export ------------------------------------------------------------------------------------


async def start_export(rt: Runtime, identity: Identity) -> ExportStarted:
    """Queue an export of the caller's account; it is built in the background."""
    async with rt.db.transaction() as conn:
        export_id = await account_data.insert_export(conn, identity.account_id, identity.user_id)
        await audit.audit(
            conn,
            "account.exported",
            actor_id=identity.user_id,
            target_id=identity.account_id,
            details={"export_id": str(export_id)},
        )
    task = asyncio.create_task(_build(rt, export_id, identity))
    rt.background.add(task)
    task.add_done_callback(rt.background.discard)
    return ExportStarted(export_id=str(export_id))


async def _build(rt: Runtime, export_id: uuid.UUID, identity: Identity) -> None:
    try:
        document = await build_document(rt.db, identity.account_id, rt.media_links)
    except Exception:
        log.exception("export failed", extra={"export_id": str(export_id)})
        document = None
    async with rt.db.transaction() as conn:
        await account_data.finish_export(conn, export_id, document)
    if document is not None:
        with contextlib.suppress(Exception):
            await notifications.notify(
                rt,
                [identity.user_id],
                "account.export_ready",
                "Your data export is ready",
                data={"export_id": str(export_id)},
            )


async def build_document(db: Database, account_id: str, links: MediaLinks) -> dict[str, Any]:
    """Everything stored about the account: each profile with its conversations (messages as
    that profile sees them, media links signed for it), purchases, wallet and ledger,
    subscriptions, notifications."""
    async with db.connection() as conn:
        profiles = await users.account_profiles(conn, account_id)
        out: list[dict[str, Any]] = []
        for profile in profiles:
            entry: dict[str, Any] = {"profile": profile.model_dump(mode="json")}
            entry.update(await account_data.profile_records(conn, profile.id))
            conversations = []
            for conversation_id in await account_data.conversation_ids(conn, profile.id):
                seen: list[dict[str, Any]] = []
                after = 0
                while True:
                    page = await messages.after_seq(conn, conversation_id, profile.id, after, _PAGE)
                    seen.extend(
                        render_for_viewer(m, profile.id, links).model_dump(mode="json")
                        for m in page
                    )
                    if len(page) < _PAGE:
                        break
                    after = page[-1].seq
                conversations.append({"id": str(conversation_id), "messages": seen})
            entry["conversations"] = conversations
            # Push devices, blocks and reports have no tables yet (#16, #17): nothing stored.
            entry["devices"], entry["blocks"], entry["reports"] = [], [], []
            out.append(entry)
    return {
        "account_id": account_id,
        "generated_at": datetime.now().astimezone().isoformat(),
        "profiles": out,
    }


async def export_status(rt: Runtime, identity: Identity, export_id: str) -> ExportStatus:
    """Where an export of the caller's account stands."""
    parsed = _parse(export_id)
    async with rt.db.connection() as conn:
        row = await account_data.get_export(conn, parsed, identity.account_id)
    if row is None:
        raise NotFound("no such export")
    status = "expired" if row["expired"] else row["status"]
    url = None
    if status == "ready":
        base = rt.settings.public_url.rstrip("/")
        url = f"{base}/api/v1/accounts/me/exports/{parsed}/download"
    return ExportStatus(
        export_id=str(parsed),
        status=status,
        download_url=url,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


async def export_download(rt: Runtime, identity: Identity, export_id: str) -> str:
    """The JSON document of a ready export of the caller's account."""
    async with rt.db.connection() as conn:
        document = await account_data.export_document(conn, _parse(export_id), identity.account_id)
    if document is None:
        raise NotFound("no such export ready")
    return document


def _parse(export_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(export_id)
    except ValueError:
        raise NotFound("no such export") from None


# -- deactivate and erase ----------------------------------------------------------------------


async def delete_account(
    rt: Runtime, identity: Identity, request: DeleteAccount, ip: str | None
) -> Deleted:
    """Deactivate the caller's account now (sockets ended, tokens and logins refused) and
    erase it after `BACKCHANNEL_ERASE_GRACE_DAYS` (0: now)."""
    async with rt.db.connection() as conn:
        profiles = await users.account_profiles(conn, identity.account_id)
        email = next((p.email for p in profiles if p.email), None)
        stored = await users.get_credentials(conn, email) if email else None
    if email is None:
        raise Invalid("this account has no email to confirm with; ask an operator")
    if request.password is not None:
        hashed = stored.password_hash if stored else None
        if not await asyncio.to_thread(password_matches, hashed, request.password):
            raise Unauthorized("wrong password")
    elif request.code is not None and not await check_code(rt, email, request.code):
        raise Unauthorized("that code is not valid; ask for a new one")
    grace = rt.settings.erase_grace_days
    async with rt.db.transaction() as conn:
        ids = await account_data.deactivate(conn, identity.account_id, grace)
        ended = await sessions.end_sessions(conn, ids, None, "account_deleted")
        await audit.audit(
            conn,
            "account.deactivated",
            actor_id=identity.user_id,
            target_id=identity.account_id,
            ip=ip,
            details={"profiles": ids, "grace_days": grace},
        )
    await rt.revocations.ended([str(s) for s in ended], "account_deleted")
    if grace == 0:
        await erase_account(rt.db, identity.account_id, rt=rt, actor_id=identity.user_id)
        return Deleted(deactivated_profile_ids=ids, erase_after=None, erased=True)
    async with rt.db.connection() as conn:
        erase_after = await account_data.erase_after(conn, ids)
    return Deleted(deactivated_profile_ids=ids, erase_after=erase_after, erased=False)


async def erase_account(
    db: Database, account_id: str, *, rt: Runtime | None = None, actor_id: str | None = None
) -> list[str]:
    """Erase every profile of an account now; returns their ids."""
    async with db.transaction() as conn:
        ids, stripe_subscriptions = await account_data.erase(conn, account_id)
        if ids:
            await audit.audit(
                conn,
                "account.erased",
                actor_id=actor_id,
                target_id=account_id,
                details={"profiles": ids},
            )
    for row_id, stripe_id in stripe_subscriptions:
        if rt is None or rt.settings.stripe_secret_key is None:
            log.warning("stripe subscription of an erased account not cancelled: no Stripe key")
            continue
        try:
            await rt.stripe.cancel_at_period_end(stripe_id)
            async with db.transaction() as conn:
                await account_data.mark_cancelling(conn, row_id)
        except Exception as exc:
            log.warning("stripe subscription of an erased account not cancelled: %s", exc)
    return ids


async def erase_by_email(db: Database, email: str) -> tuple[list[str], list[str]]:
    """`backchannel account erase EMAIL`: an operator erases an account now; returns the
    profile ids and the sessions that ended (for the running nodes to end their sockets)."""
    async with db.connection() as conn:
        account_id = await account_data.account_by_email(conn, email.strip().lower())
    if account_id is None:
        raise NotFound(f"no account with email {email}")
    async with db.transaction() as conn:
        ids = await account_data.deactivate(conn, account_id, 0)
        ended = await sessions.end_sessions(conn, ids, None, "account_deleted")
        await audit.audit(conn, "account.deactivated", target_id=account_id, details={"by": "cli"})
    return await erase_account(db, account_id), [str(s) for s in ended]


async def erase_due(rt: Runtime) -> int:
    """Erase the accounts whose grace period has passed; returns how many."""
    async with rt.db.connection() as conn:
        due = await account_data.accounts_due(conn)
    for account_id in due:
        await erase_account(rt.db, account_id, rt=rt)
    return len(due)
