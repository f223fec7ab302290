"""Public profiles: read anyone's, edit your own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from backchannel.errors import Forbidden, NotFound
from backchannel.inputs import require_https
from backchannel.persistence import users
from backchannel.persistence.users import Role, User

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class Profile(BaseModel):
    """What anyone may see of a user."""

    user_id: str
    display_name: str
    bio: str
    avatar_url: str | None
    role: Role
    subscription_price_cents: int

    @classmethod
    def of(cls, user: User) -> Profile:
        """The public view of a user."""
        return cls(
            user_id=user.id,
            display_name=user.display_name,
            bio=user.bio,
            avatar_url=user.avatar_url,
            role=user.role,
            subscription_price_cents=user.subscription_price_cents,
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


async def get_profile(rt: Runtime, user_id: str) -> Profile:
    """Anyone's public profile."""
    async with rt.db.connection() as conn:
        user = await users.get_active_user(conn, user_id)
    if user is None:
        raise NotFound("no such user")
    return Profile.of(user)


async def get_me(rt: Runtime, user_id: str) -> Me:
    """The caller with their profile."""
    async with rt.db.connection() as conn:
        user = await users.get_active_user(conn, user_id)
    if user is None:
        raise NotFound("no such user")
    return Me(user=user, profile=Profile.of(user))


async def update_my_profile(rt: Runtime, user_id: str, update: ProfileUpdate) -> Profile:
    """Change the caller's own profile."""
    given = update.model_fields_set
    if not given:
        return await get_profile(rt, user_id)  # `{}` changes nothing, as the document says
    if update.avatar_url is not None:
        require_https([("avatar_url", str(update.avatar_url))], dev=rt.settings.env == "dev")
    async with rt.db.transaction() as conn:
        current = await users.get_active_user(conn, user_id)
        if current is None:
            raise NotFound("no such user")
        if "subscription_price_cents" in given and current.role != "creator":
            # Who may set it depends on the caller, not on the request: forbidden, not invalid.
            raise Forbidden("only creators set a subscription price")
        user = await users.update_profile(
            conn,
            user_id,
            display_name=update.display_name,
            bio=update.bio,
            set_avatar="avatar_url" in given,
            avatar_url=str(update.avatar_url) if update.avatar_url else None,
            subscription_price_cents=update.subscription_price_cents,
        )
    if user is None:
        raise NotFound("no such user")
    return Profile.of(user)
