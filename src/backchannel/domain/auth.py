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

from backchannel.domain import filter_rules
from backchannel.errors import Conflict, Forbidden, RateLimited, Unauthorized
from backchannel.persistence import (
    audit,
    bans,
    creator_requests,
    refresh_tokens,
    sessions,
    users,
)
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
    """`POST /auth/refresh`."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=512)]


class LogoutRequest(BaseModel):
    """`POST /auth/logout`: the session of this refresh token, or of the bearer token."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=512)] | None = None


@dataclass(frozen=True)
class Client:
    """Where a login comes from, for its session and the audit log."""

    ip: str | None = None
    user_agent: str | None = None


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
    session_id: str | None = None
    account_id: str = ""


BANNED = "banned"


async def refuse_if_banned(conn: Connection, user_id: str) -> None:
    """`forbidden` (`details.reason: "banned"`, `until`) while a ban is in force."""
    refuse_ban(user_id, await bans.active_ban(conn, user_id))


def refuse_ban(user_id: str, ban: bans.Ban | None) -> None:
    """`forbidden` (`details.reason: "banned"`, `until`) when `ban` is in force."""
    if ban is not None:
        raise Forbidden(
            "this account is banned",
            {"reason": BANNED, "until": ban.until.isoformat() if ban.until else None},
        )


def _hash_refresh(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue_pair(
    rt: Runtime, conn: Connection, user: User, family: uuid.UUID, client: Client | None = None
) -> AuthResult:
    """A token pair of session `family`; a `client` means a new login, so a new session."""
    if client is not None:
        await sessions.insert_session(
            conn,
            session_id=family,
            user_id=user.id,
            user_agent=(client.user_agent or "")[:512] or None,
            ip=client.ip,
        )
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
        access_token=rt.tokens.mint_access(user.id, str(family), user.account_id),
        refresh_token=refresh,
        expires_in=rt.tokens.access_ttl_seconds,
    )


async def register(
    rt: Runtime, request: RegisterRequest, client: Client | None = None
) -> AuthResult:
    """Create an account and log it in.

    Under `BACKCHANNEL_CREATOR_SIGNUP=approval` a creator sign-up makes a fan with a pending
    creator request, which an admin approves or rejects.
    """
    display_name, _ = await filter_rules.screen_text(rt, request.display_name, "display_name")
    assert display_name is not None
    password_hash = await asyncio.to_thread(_hasher.hash, request.password)
    role: Role = request.role
    needs_approval = role == "creator" and rt.settings.creator_signup_mode == "approval"
    if needs_approval:
        role = "fan"
    try:
        async with rt.db.transaction() as conn:
            user = await users.insert_user(
                conn,
                email=request.email,
                password_hash=password_hash,
                display_name=display_name,
                role=role,
            )
            if needs_approval:
                await creator_requests.insert_request(conn, user.id)
            return await issue_pair(rt, conn, user, uuid.uuid4(), client or Client())
    except Conflict as exc:
        raise Conflict("an account with this email already exists") from exc


@dataclass(frozen=True)
class LoginLimits:
    """The three buckets of failed logins: per account, per (account, IP), per IP."""

    account: tuple[str, Rate]
    pair: tuple[str, Rate] | None
    ip: tuple[str, Rate] | None

    @classmethod
    def of(cls, rt: Runtime, email: str, client_ip: str | None) -> LoginLimits:
        """The buckets of a login attempt; the account is hashed so no email sits in Redis."""
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        settings = rt.settings
        per_account = Rate.parse(settings.login_failures_per_account)
        account_limit = (f"login:account:{account}", per_account)
        if not client_ip:
            return cls(account=account_limit, pair=None, ip=None)
        return cls(
            account=account_limit,
            pair=(
                f"login:pair:{account}:{client_ip}",
                Rate.parse(settings.login_failures_per_account_ip),
            ),
            ip=(f"login:ip:{client_ip}", Rate.parse(settings.login_failures_per_ip)),
        )

    @property
    def own(self) -> list[tuple[str, Rate]]:
        """The buckets of this account: spent, they refuse even the right password."""
        return [self.account] + ([self.pair] if self.pair else [])

    async def check(self, rt: Runtime) -> None:
        """Refuse when the account's buckets are spent, or the IP's is and this account has
        failed from this IP: a pristine account is never refused for its neighbours' failures."""
        refused: RateLimited | None = None
        try:
            await rt.limiter.check_all(self.own)
        except RateLimited as exc:
            refused = exc
        if refused is None and self.ip is not None and self.pair is not None:
            ip_wait = await rt.limiter.peek_all([self.ip])
            if ip_wait > 0:
                pair_bucket, pair_rate = self.pair
                # A burst of one is "no failure outstanding": the pair bucket is full.
                pristine = Rate(pair_rate.count, pair_rate.period_seconds, 1)
                if await rt.limiter.peek_all([(pair_bucket, pristine)]) > 0:
                    try:
                        await rt.limiter.check_all([self.ip])
                    except RateLimited as exc:
                        refused = exc
        if refused is not None:
            raise RateLimited(
                refused.retry_after_ms, "too many failed logins; try again later"
            ) from None

    async def failed(self, rt: Runtime) -> None:
        """Count a failure in every bucket that still has room."""
        for bucket in [*self.own, *([self.ip] if self.ip else [])]:
            with contextlib.suppress(RateLimited):
                await rt.limiter.hit(*bucket)

    async def succeeded(self, rt: Runtime) -> None:
        """The right password clears the account's failures (not the IP's)."""
        for bucket, _ in self.own:
            await rt.limiter.reset(bucket)


async def login(rt: Runtime, request: LoginRequest, client: Client | None = None) -> AuthResult:
    """Check a password and start a new session (token family).

    Failures are counted per account, per (account, IP) and, with a higher ceiling, per IP
    (`LoginLimits`); a spent budget answers `rate_limited`, even with the right password.
    """
    client = client or Client()
    limits = LoginLimits.of(rt, request.email, client.ip)
    await limits.check(rt)
    async with rt.db.connection() as conn:
        credentials = await users.get_credentials(conn, request.email)
    stored_hash = credentials.password_hash if credentials and credentials.password_hash else None
    if not await asyncio.to_thread(password_matches, stored_hash, request.password):
        await limits.failed(rt)
        async with rt.db.transaction() as conn:
            await audit.audit(
                conn,
                "login.failed",
                target_id=credentials.id if credentials else None,
                ip=client.ip,
            )
        raise Unauthorized("wrong email or password")
    await limits.succeeded(rt)
    assert credentials is not None and stored_hash is not None
    async with rt.db.transaction() as conn:
        if _hasher.check_needs_rehash(stored_hash):
            new_hash = await asyncio.to_thread(_hasher.hash, request.password)
            await users.update_password_hash(conn, credentials.id, new_hash)
        user = await users.get_active_user(conn, credentials.id)
        if user is None:
            raise Unauthorized("wrong email or password")
        await refuse_if_banned(conn, user.id)
        await audit.audit(
            conn, "login.succeeded", actor_id=user.id, target_id=user.id, ip=client.ip
        )
        return await issue_pair(rt, conn, user, uuid.uuid4(), client)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed (a missing hash costs the same and fails)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def refresh(rt: Runtime, request: RefreshRequest) -> AuthResult:
    """Exchange a refresh token for a new pair; a reused one revokes its whole family."""
    reused: list[uuid.UUID] = []
    async with rt.db.transaction() as conn:
        stored = await refresh_tokens.lock_token(conn, _hash_refresh(request.refresh_token))
        if stored is None or stored.revoked_at is not None or not stored.user_active:
            if stored is not None:
                await refuse_if_banned(conn, stored.user_id)  # a ban revoked it: say so
            raise Unauthorized("refresh token is not valid")
        if stored.rotated_at is not None:
            # Someone holds a copy of a token already exchanged: end the whole session.
            await refresh_tokens.revoke_family(conn, stored.family_id)
            reused = await sessions.end_sessions(
                conn, [stored.user_id], [stored.family_id], "refresh_reused"
            )
            await audit.audit(
                conn,
                "refresh.reused",
                target_id=stored.user_id,
                details={"session_id": str(stored.family_id)},
            )
        else:
            if stored.expired:
                raise Unauthorized("refresh token has expired")
            await refresh_tokens.mark_rotated(conn, stored.id)
            user = await users.get_active_user(conn, stored.user_id)
            if user is None:
                raise Unauthorized("refresh token is not valid")
            await refuse_if_banned(conn, user.id)
            await sessions.touch_session(conn, stored.family_id)
            return await issue_pair(rt, conn, user, stored.family_id)
    if reused or stored.rotated_at is not None:
        await rt.revocations.ended([str(sid) for sid in reused], "refresh_reused")
        raise Unauthorized("refresh token was already used; the session has been revoked")
    raise Unauthorized("refresh token is not valid")


async def session_of_refresh_token(rt: Runtime, token: str) -> tuple[str, uuid.UUID] | None:
    """The user and session a refresh token belongs to, if it is known."""
    async with rt.db.connection() as conn:
        stored = await refresh_tokens.find_token(conn, _hash_refresh(token))
    return (stored.user_id, stored.family_id) if stored is not None else None


async def authenticate(rt: Runtime, token: str | None) -> Identity:
    """The identity behind an access token; external subjects are provisioned on first sight."""
    if not token:
        raise Unauthorized("an access token is required")
    claims = await rt.tokens.verify(token)
    if claims.session_id is not None and rt.revocations.is_ended(claims.session_id):
        async with rt.db.connection() as conn:
            await refuse_if_banned(conn, claims.user_id)  # ended by a ban: say so
        raise Unauthorized("this session has ended; log in again")
    async with rt.db.connection() as conn:
        # One round trip for both: this runs on every connect of every socket.
        user, ban = await users.get_active_user_and_ban(conn, claims.user_id)
        refuse_ban(claims.user_id, ban)
        if (
            user is None
            and claims.external
            and await users.user_exists(conn, claims.user_id) is None
        ):
            # Without a configured role claim, a legacy `role` claim may only ask for creator.
            role: Role = _claimed_role(rt, claims.role) or (
                "creator" if claims.role == "creator" else "fan"
            )
            await users.provision_external_user(
                conn,
                user_id=claims.user_id,
                display_name=claims.name or claims.user_id,
                role=role,
                email=claims.email,
            )
            user = await users.get_active_user(conn, claims.user_id)
        elif user is not None and claims.external:
            user = await _apply_external_claims(rt, conn, user, claims.role, claims.email)
    if user is None:
        raise Unauthorized("this account no longer exists")
    return Identity(
        user_id=user.id,
        role=user.role,
        expires_at=claims.expires_at,
        session_id=claims.session_id,
        account_id=user.account_id,
    )


def _claimed_role(rt: Runtime, role: str | None) -> Role | None:
    """The role an external token sets, when `BACKCHANNEL_JWT_ROLE_CLAIM` is configured."""
    if rt.settings.jwt_role_claim is None or role not in ("fan", "creator", "moderator", "admin"):
        return None
    return role  # type: ignore[return-value]


async def _apply_external_claims(
    rt: Runtime, conn: Connection, user: User, role: str | None, email: str | None
) -> User:
    """The identity provider is the authority on a configured role claim and on the email."""
    wanted = _claimed_role(rt, role)
    new_role = wanted if wanted is not None and wanted != user.role else None
    new_email = email if email is not None and email != user.email else None
    if new_role is None and new_email is None:
        return user
    updated = await users.apply_external_claims(conn, user.id, role=new_role, email=new_email)
    if new_role is not None:
        await audit.audit(
            conn,
            "role.changed",
            target_id=user.id,
            details={"from": user.role, "to": new_role, "by": "identity provider"},
        )
    return updated or user
