"""Registration, login, refresh-token rotation, logout, and who a token belongs to."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints, field_validator

from backchannel.errors import Conflict, RateLimited, Unauthorized
from backchannel.persistence import refresh_tokens, users
from backchannel.persistence.database import Connection
from backchannel.persistence.users import Role, User
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Checked against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]


class RegisterRequest(BaseModel):
    """`POST /auth/register`."""

    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    password: Password
    display_name: DisplayName
    role: Literal["fan", "creator"] = "fan"

    @field_validator("email")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return value.strip().lower()


class LoginRequest(BaseModel):
    """`POST /auth/login`."""

    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RefreshRequest(BaseModel):
    """`POST /auth/refresh` and `POST /auth/logout`."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=512)]


class AuthResult(BaseModel):
    """A user and a fresh token pair."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Identity:
    """Who a request or socket acts as."""

    user_id: str
    role: Role
    expires_at: float


def _hash_refresh(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _issue_pair(rt: Runtime, conn: Connection, user: User, family: uuid.UUID) -> AuthResult:
    refresh = secrets.token_urlsafe(32)
    await refresh_tokens.insert_token(
        conn,
        user_id=user.id,
        family_id=family,
        token_hash=_hash_refresh(refresh),
        ttl_days=rt.settings.refresh_token_ttl_days,
    )
    return AuthResult(
        user=user,
        access_token=rt.tokens.mint_access(user.id),
        refresh_token=refresh,
        expires_in=rt.tokens.access_ttl_seconds,
    )


async def register(rt: Runtime, request: RegisterRequest) -> AuthResult:
    """Create an account and log it in."""
    password_hash = await asyncio.to_thread(_hasher.hash, request.password)
    try:
        async with rt.db.transaction() as conn:
            user = await users.insert_user(
                conn,
                email=request.email,
                password_hash=password_hash,
                display_name=request.display_name,
                role=request.role,
            )
            return await _issue_pair(rt, conn, user, uuid.uuid4())
    except Conflict as exc:
        raise Conflict("an account with this email already exists") from exc


def _login_limits(rt: Runtime, email: str, client_ip: str | None) -> list[tuple[str, Rate]]:
    # The account is hashed so no email address ever sits in a Redis key.
    account = hashlib.sha256(email.encode()).hexdigest()[:32]
    limits = [(f"login:account:{account}", Rate.parse(rt.settings.login_failures_per_account))]
    if client_ip:
        limits.append((f"login:ip:{client_ip}", Rate.parse(rt.settings.login_failures_per_ip)))
    return limits


async def login(rt: Runtime, request: LoginRequest, *, client_ip: str | None = None) -> AuthResult:
    """Check a password and start a new token family.

    Failed attempts are counted per account and per client IP; once either budget is spent,
    every attempt (even with the right password) answers `rate_limited` until it refills.
    """
    limits = _login_limits(rt, request.email, client_ip)
    try:
        await rt.limiter.check_all(limits)
    except RateLimited as exc:
        raise RateLimited(exc.retry_after_ms, "too many failed logins; try again later") from None
    async with rt.db.connection() as conn:
        credentials = await users.get_credentials(conn, request.email)
    stored_hash = credentials.password_hash if credentials and credentials.password_hash else None
    if not await asyncio.to_thread(_password_matches, stored_hash, request.password):
        with contextlib.suppress(RateLimited):  # a concurrent failure spent the last unit
            await rt.limiter.hit_all(limits)
        raise Unauthorized("wrong email or password")
    await rt.limiter.reset(limits[0][0])
    assert credentials is not None and stored_hash is not None
    async with rt.db.transaction() as conn:
        if _hasher.check_needs_rehash(stored_hash):
            new_hash = await asyncio.to_thread(_hasher.hash, request.password)
            await users.update_password_hash(conn, credentials.id, new_hash)
        user = await users.get_active_user(conn, credentials.id)
        if user is None:
            raise Unauthorized("wrong email or password")
        return await _issue_pair(rt, conn, user, uuid.uuid4())


def _password_matches(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def refresh(rt: Runtime, request: RefreshRequest) -> AuthResult:
    """Exchange a refresh token for a new pair; a reused one revokes its whole family."""
    reused = False
    async with rt.db.transaction() as conn:
        stored = await refresh_tokens.lock_token(conn, _hash_refresh(request.refresh_token))
        if stored is None or stored.revoked_at is not None or not stored.user_active:
            raise Unauthorized("refresh token is not valid")
        if stored.rotated_at is not None:
            # Someone holds a copy of a token already exchanged: end the whole session.
            await refresh_tokens.revoke_family(conn, stored.family_id)
            reused = True
        else:
            if stored.expired:
                raise Unauthorized("refresh token has expired")
            await refresh_tokens.mark_rotated(conn, stored.id)
            user = await users.get_active_user(conn, stored.user_id)
            if user is None:
                raise Unauthorized("refresh token is not valid")
            return await _issue_pair(rt, conn, user, stored.family_id)
    if reused:
        raise Unauthorized("refresh token was already used; the session has been revoked")
    raise Unauthorized("refresh token is not valid")


async def logout(rt: Runtime, request: RefreshRequest) -> None:
    """Revoke the token family of this refresh token; unknown tokens are ignored."""
    async with rt.db.transaction() as conn:
        stored = await refresh_tokens.lock_token(conn, _hash_refresh(request.refresh_token))
        if stored is not None:
            await refresh_tokens.revoke_family(conn, stored.family_id)


async def authenticate(rt: Runtime, token: str | None) -> Identity:
    """The identity behind an access token; external subjects are provisioned on first sight."""
    if not token:
        raise Unauthorized("an access token is required")
    claims = await rt.tokens.verify(token)
    async with rt.db.connection() as conn:
        user = await users.get_active_user(conn, claims.user_id)
        if (
            user is None
            and claims.external
            and await users.user_exists(conn, claims.user_id) is None
        ):
            role: Role = "creator" if claims.role == "creator" else "fan"
            await users.provision_external_user(
                conn,
                user_id=claims.user_id,
                display_name=claims.name or claims.user_id,
                role=role,
                email=None,
            )
            user = await users.get_active_user(conn, claims.user_id)
    if user is None:
        raise Unauthorized("this account no longer exists")
    return Identity(user_id=user.id, role=user.role, expires_at=claims.expires_at)
