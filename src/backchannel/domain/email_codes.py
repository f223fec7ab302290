"""Logging in with a one-time code sent by email; the account is made on first use.

A code is 6 digits, lives 5 minutes, is kept only as an HMAC (keyed with the server secret,
so a copy of the table does not give the codes away), works once, and is burnt by the third
wrong try. An address gets at most 3 codes an hour. Asking for a code never says whether an
account exists. Starting a new code retires the previous one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints, field_validator

from backchannel.domain.auth import AuthResult, Client, DisplayName, issue_pair
from backchannel.errors import RateLimited, Unauthorized, Unavailable
from backchannel.persistence import audit, creator_requests, users
from backchannel.persistence import email_codes as codes
from backchannel.persistence.database import Connection
from backchannel.persistence.users import User

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

CODE_TTL_SECONDS = 300
MAX_WRONG_TRIES = 3
CODES_PER_HOUR = 3


class CodeStart(BaseModel):
    """`POST /auth/otp/start`."""

    model_config = ConfigDict(extra="forbid")
    email: EmailStr

    @field_validator("email")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return value.strip().lower()


class CodeStarted(BaseModel):
    """202: a code is on its way if the address can receive mail."""

    expires_in: int


class CodeVerify(BaseModel):
    """`POST /auth/otp/verify`; `display_name` and `role` apply when the account is new."""

    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]
    display_name: DisplayName | None = None
    role: Literal["fan", "creator"] = "fan"

    @field_validator("email")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return value.strip().lower()


class CodeLogin(AuthResult):
    """A token pair, and whether the account was made by this verification."""

    created: bool


def _digest(rt: Runtime, email: str, code: str) -> bytes:
    key = rt.settings.jwt_secret_value().encode()
    return hmac.new(key, f"email-code:{email}:{code}".encode(), hashlib.sha256).digest()


async def start(rt: Runtime, request: CodeStart) -> CodeStarted:
    """Store a new code for the address and queue the mail that carries it."""
    if rt.settings.smtp_url is None and rt.settings.env == "production":
        raise Unavailable("email is not configured on this server (BACKCHANNEL_SMTP_URL)")
    code = f"{secrets.randbelow(1_000_000):06d}"
    async with rt.db.transaction() as conn:
        await codes.lock_address(conn, request.email)
        count, wait_seconds = await codes.codes_in_last_hour(conn, request.email)
        if count >= CODES_PER_HOUR:
            raise RateLimited(
                int(wait_seconds * 1000) + 1, "too many codes for this address; try again later"
            )
        digest = _digest(rt, request.email, code)
        await codes.insert_code(conn, request.email, digest, CODE_TTL_SECONDS)
        await codes.enqueue(
            conn,
            to=request.email,
            subject=f"Your sign-in code: {code}",
            body=(
                f"Your sign-in code is {code}.\n\n"
                f"It works once, for {CODE_TTL_SECONDS // 60} minutes. "
                "If you did not ask for it, ignore this message.\n"
            ),
            discard_after_seconds=CODE_TTL_SECONDS,
        )
    rt.mailer.wake()
    return CodeStarted(expires_in=CODE_TTL_SECONDS)


async def verify(rt: Runtime, request: CodeVerify, client: Client | None = None) -> CodeLogin:
    """Exchange a code for a token pair; the account is made on first verification."""
    client = client or Client()
    wrong = False
    async with rt.db.transaction() as conn:
        live = await codes.lock_live_code(conn, request.email)
        if live is None:
            raise Unauthorized("that code is not valid; ask for a new one")
        if not hmac.compare_digest(live.code_hash, _digest(rt, request.email, request.code)):
            # Committed (not raised inside the transaction), so the wrong try counts.
            await codes.count_wrong_try(conn, live.id, MAX_WRONG_TRIES)
            wrong = True
        else:
            await codes.use_code(conn, live.id)
            user, created = await _user_for(rt, conn, request)
            await audit.audit(
                conn,
                "login.succeeded",
                actor_id=user.id,
                target_id=user.id,
                ip=client.ip,
                details={"method": "email_code", "created": created},
            )
            result = await issue_pair(rt, conn, user, uuid.uuid4(), client)
    if wrong:
        raise Unauthorized("that code is not valid; ask for a new one")
    return CodeLogin(**result.model_dump(), created=created)


async def _user_for(rt: Runtime, conn: Connection, request: CodeVerify) -> tuple[User, bool]:
    """The account of this address, made now if there is none (and whether it was)."""
    user_id = await users.id_by_email(conn, request.email)
    if user_id is not None:
        found = await users.get_active_user(conn, user_id)
        if found is None:
            raise Unauthorized("that code is not valid; ask for a new one")
        return found, False
    approval = request.role == "creator" and rt.settings.creator_signup_mode == "approval"
    user = await users.insert_user(
        conn,
        email=request.email,
        password_hash=None,
        display_name=request.display_name or request.email.split("@", 1)[0],
        role="fan" if approval else request.role,
    )
    if approval:
        await creator_requests.insert_request(conn, user.id)
    return user, True


async def check_code(rt: Runtime, email: str, code: str) -> bool:
    """Use the address's code to confirm something (deleting the account) without logging in;
    a wrong code counts as a wrong try."""
    email = email.strip().lower()
    async with rt.db.transaction() as conn:
        live = await codes.lock_live_code(conn, email)
        if live is None:
            return False
        if not hmac.compare_digest(live.code_hash, _digest(rt, email, code)):
            await codes.count_wrong_try(conn, live.id, MAX_WRONG_TRIES)
            return False
        await codes.use_code(conn, live.id)
        return True
