"""Public profiles: read anyone's, edit your own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from backchannel.domain import dm_rules, filter_rules
from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.inputs import require_https
from backchannel.persistence import dm_policies, users
from backchannel.persistence.database import Connection
from backchannel.persistence.dm_policies import DmPolicy
from backchannel.persistence.users import Role, User

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


DmPolicyName = Literal["everyone", "subscribers", "paid", "nobody"]


class Profile(BaseModel):
    """What anyone may see of a user."""

    user_id: str
    display_name: str
    bio: str
    avatar_url: str | None
    role: Role
    subscription_price_cents: int
    # Creators only: who may message them directly, and the price per message under `paid`.
    dm_policy: DmPolicyName | None = None
    dm_price_cents: int | None = None

    @classmethod
    def of(cls, user: User, dm: DmPolicy | None = None) -> Profile:
        """The public view of a user (`dm`: their DM rule in force, creators only)."""
        return cls(
            user_id=user.id,
            display_name=user.display_name,
            bio=user.bio,
            avatar_url=user.avatar_url,
            role=user.role,
            subscription_price_cents=user.subscription_price_cents,
            dm_policy=dm.dm_policy if dm else None,
            dm_price_cents=dm.dm_price_cents if dm else None,
        )


class Me(BaseModel):
    """`GET /auth/me`: the user with their profile."""

    user: User
    profile: Profile


class ProfileUpdate(BaseModel):
    """`PATCH /profiles/me`: only the fields given change; `avatar_url: null` clears it."""

    model_config = ConfigDict(extra="forbid")
    display_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)] | None
    ) = None
    bio: Annotated[str, StringConstraints(max_length=2000)] | None = None
    avatar_url: AnyHttpUrl | None = None
    subscription_price_cents: Annotated[int, Field(ge=0, le=100_000)] | None = None
    dm_policy: DmPolicyName | None = None
    dm_price_cents: Annotated[int, Field(ge=1, le=100_000)] | None = None


async def _profile(rt: Runtime, conn: Connection, user: User) -> Profile:
    stored = await dm_policies.get_policy(conn, user.id)
    return Profile.of(
        user, dm_rules.policy_of(user.role, stored, rt.settings.creator_dm_policy_default)
    )


async def get_profile(rt: Runtime, user_id: str) -> Profile:
    """Anyone's public profile."""
    async with rt.db.connection() as conn:
        user = await users.get_active_user(conn, user_id)
        if user is None:
            raise NotFound("no such user")
        return await _profile(rt, conn, user)


async def get_me(rt: Runtime, user_id: str) -> Me:
    """The caller with their profile."""
    async with rt.db.connection() as conn:
        user = await users.get_active_user(conn, user_id)
        if user is None:
            raise NotFound("no such user")
        return Me(user=user, profile=await _profile(rt, conn, user))


async def update_my_profile(rt: Runtime, user_id: str, update: ProfileUpdate) -> Profile:
    """Change the caller's own profile."""
    given = update.model_fields_set
    if not given:
        return await get_profile(rt, user_id)  # `{}` changes nothing, as the document says
    if update.avatar_url is not None:
        require_https([("avatar_url", str(update.avatar_url))], dev=rt.settings.env == "dev")
    display_name, _ = await filter_rules.screen_text(rt, update.display_name, "display_name")
    async with rt.db.transaction() as conn:
        current = await users.get_active_user(conn, user_id)
        if current is None:
            raise NotFound("no such user")
        if "subscription_price_cents" in given and current.role != "creator":
            # Who may set it depends on the caller, not on the request: forbidden, not invalid.
            raise Forbidden("only creators set a subscription price")
        if {"dm_policy", "dm_price_cents"} & given:
            await _set_dm_policy(rt, conn, current, update)
        user = await users.update_profile(
            conn,
            user_id,
            display_name=display_name,
            bio=update.bio,
            set_avatar="avatar_url" in given,
            avatar_url=str(update.avatar_url) if update.avatar_url else None,
            subscription_price_cents=update.subscription_price_cents,
        )
        if user is None:
            raise NotFound("no such user")
        return await _profile(rt, conn, user)


async def _set_dm_policy(rt: Runtime, conn: Connection, user: User, update: ProfileUpdate) -> None:
    if user.role != "creator":
        raise Forbidden("only creators set who may message them")
    stored = await dm_policies.get_policy(conn, user.id)
    current = dm_rules.policy_of(user.role, stored, rt.settings.creator_dm_policy_default)
    assert current is not None
    policy = update.dm_policy or current.dm_policy
    price = update.dm_price_cents if "dm_price_cents" in update.model_fields_set else None
    price = price if price is not None else current.dm_price_cents
    if policy == "paid" and price is None:
        raise Invalid(
            "a paid dm_policy needs dm_price_cents",
            [{"field": "dm_price_cents", "message": "required with dm_policy paid"}],
        )
    await dm_policies.set_policy(conn, user.id, DmPolicy(policy, price))
