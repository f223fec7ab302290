"""Accounts and their profiles: one login, several people to be (innovator, mentor, ...).

Each profile is a user to the rest of the system (its own id, role, conversations, presence,
notifications, wallet). The account holds what is about the person: login, sessions, rights.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from backchannel.domain.auth import AuthResult, Client, DisplayName, Identity, issue_pair
from backchannel.errors import NotFound, Unauthorized
from backchannel.persistence import audit, creator_requests, users
from backchannel.persistence.users import User

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

MAX_PROFILES = 20


class AccountView(BaseModel):
    """`GET /accounts/me`."""

    account_id: str
    email: str | None
    profiles: list[User]
    active_profile_id: str


class NewProfile(BaseModel):
    """`POST /accounts/me/profiles`."""

    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName
    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    role: Literal["fan", "creator"] = "fan"


class SwitchProfile(BaseModel):
    """`POST /auth/switch-profile`."""

    model_config = ConfigDict(extra="forbid")
    profile_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]


async def get_account(rt: Runtime, identity: Identity) -> AccountView:
    """The caller's account with every profile."""
    async with rt.db.connection() as conn:
        profiles = await users.account_profiles(conn, identity.account_id)
    email = next((p.email for p in profiles if p.email), None)
    return AccountView(
        account_id=identity.account_id,
        email=email,
        profiles=profiles,
        active_profile_id=identity.user_id,
    )


async def add_profile(rt: Runtime, identity: Identity, request: NewProfile) -> User:
    """Another profile of the caller's account; a creator one only as sign-up allows."""
    async with rt.db.transaction() as conn:
        existing = await users.account_profiles(conn, identity.account_id)
        if len(existing) >= MAX_PROFILES:
            from backchannel.errors import Conflict

            raise Conflict(f"an account holds at most {MAX_PROFILES} profiles")
        approval = request.role == "creator" and rt.settings.creator_signup_mode == "approval"
        profile = await users.insert_profile(
            conn,
            account_id=identity.account_id,
            display_name=request.display_name,
            kind=request.kind,
            role="fan" if approval else request.role,
        )
        if approval:
            await creator_requests.insert_request(conn, profile.id)
        await audit.audit(
            conn,
            "profile.created",
            actor_id=identity.user_id,
            target_id=profile.id,
            details={"account_id": identity.account_id, "kind": request.kind},
        )
    return profile


async def switch_profile(
    rt: Runtime, identity: Identity, request: SwitchProfile, client: Client
) -> AuthResult:
    """A token pair for another profile of the caller's account (a session of its own)."""
    async with rt.db.transaction() as conn:
        profile = await users.get_active_user(conn, request.profile_id)
        if profile is None or profile.account_id != identity.account_id:
            raise NotFound("no such profile in your account")
        if not identity.account_id:
            raise Unauthorized("this token names no account")
        return await issue_pair(rt, conn, profile, uuid.uuid4(), client)
