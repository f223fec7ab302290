"""Users and profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from backchannel.persistence.bans import Ban
from backchannel.persistence.database import Connection

Role = Literal["fan", "creator", "moderator", "admin"]
ROLES: tuple[Role, ...] = ("fan", "creator", "moderator", "admin")


class User(BaseModel):
    """A user with their public profile fields."""

    id: str
    email: str | None
    display_name: str
    role: Role
    bio: str
    avatar_url: str | None
    subscription_price_cents: int
    created_at: datetime
    account_id: str
    kind: str


class Credentials(BaseModel):
    """What login needs to check a password."""

    id: str
    password_hash: str | None


_USER_COLUMNS = (
    "id, email, display_name, role, bio, avatar_url, subscription_price_cents, created_at, "
    "account_id::text as account_id, kind"
)

INSERT_USER = f"""
insert into users (email, password_hash, display_name, role)
values ($1, $2, $3, $4)
returning {_USER_COLUMNS}
"""


async def insert_user(
    conn: Connection, *, email: str, password_hash: str | None, display_name: str, role: Role
) -> User:
    """Create a user; a taken email raises `Conflict` at the unit-of-work boundary."""
    row = await conn.fetchrow(INSERT_USER, email, password_hash, display_name, role)
    return User.model_validate(dict(row))


PROVISION_EXTERNAL = f"""
insert into users (id, display_name, role, email)
values ($1, $2, $3, $4)
on conflict (id) do nothing
returning {_USER_COLUMNS}
"""


async def provision_external_user(
    conn: Connection, *, user_id: str, display_name: str, role: Role, email: str | None
) -> None:
    """Create a user for a first-seen external `sub`; a known one is left as it is."""
    await conn.execute(PROVISION_EXTERNAL, user_id, display_name, role, email)


SELECT_CREDENTIALS = """
select id, password_hash from users where email = $1 and deleted_at is null
"""


async def get_credentials(conn: Connection, email: str) -> Credentials | None:
    """The password hash of an active user with this email."""
    row = await conn.fetchrow(SELECT_CREDENTIALS, email)
    return Credentials.model_validate(dict(row)) if row else None


UPDATE_PASSWORD_HASH = "update users set password_hash = $2 where id = $1"


async def update_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
    """Store a rehashed password (argon2 parameters changed)."""
    await conn.execute(UPDATE_PASSWORD_HASH, user_id, password_hash)


SELECT_ACTIVE_USER = f"select {_USER_COLUMNS} from users where id = $1 and deleted_at is null"


async def get_active_user(conn: Connection, user_id: str) -> User | None:
    """The user, unless unknown or deleted."""
    row = await conn.fetchrow(SELECT_ACTIVE_USER, user_id)
    return User.model_validate(dict(row)) if row else None


SELECT_ACTIVE_USER_AND_BAN = f"""
with u as (select {_USER_COLUMNS} from users where id = $1 and deleted_at is null),
     b as (select reason as ban_reason, until as ban_until, banned_by as ban_banned_by,
                  created_at as ban_created_at
           from user_bans where user_id = $1 and (until is null or until > now()))
select * from (select 1) as one left join u on true left join b on true
"""


async def get_active_user_and_ban(conn: Connection, user_id: str) -> tuple[User | None, Ban | None]:
    """The user (unless unknown or deleted) and the ban in force on them, in one round trip:
    what every authenticated request and socket connect asks."""
    row = await conn.fetchrow(SELECT_ACTIVE_USER_AND_BAN, user_id)
    assert row is not None  # the statement always returns its one row
    ban = None
    if row["ban_reason"] is not None:
        ban = Ban(
            user_id=user_id,
            reason=row["ban_reason"],
            until=row["ban_until"],
            banned_by=row["ban_banned_by"],
            created_at=row["ban_created_at"],
        )
    user = None
    if row["id"] is not None:
        user = User.model_validate({name: row[name] for name in User.model_fields})
    return user, ban


SELECT_USER_STATE = "select deleted_at is null as active from users where id = $1"


async def user_exists(conn: Connection, user_id: str) -> bool | None:
    """True if active, False if deleted, None if never seen."""
    value: bool | None = await conn.fetchval(SELECT_USER_STATE, user_id)
    return value


UPDATE_PROFILE = f"""
update users set
    display_name = coalesce($2, display_name),
    bio = coalesce($3, bio),
    avatar_url = case when $4::boolean then $5 else avatar_url end,
    subscription_price_cents = coalesce($6, subscription_price_cents)
where id = $1 and deleted_at is null
returning {_USER_COLUMNS}
"""


async def update_profile(
    conn: Connection,
    user_id: str,
    *,
    display_name: str | None,
    bio: str | None,
    set_avatar: bool,
    avatar_url: str | None,
    subscription_price_cents: int | None,
) -> User | None:
    """Change the given profile fields; `set_avatar` distinguishes clearing from leaving."""
    row = await conn.fetchrow(
        UPDATE_PROFILE,
        user_id,
        display_name,
        bio,
        set_avatar,
        avatar_url,
        subscription_price_cents,
    )
    return User.model_validate(dict(row)) if row else None


SOFT_DELETE_USER = "update users set deleted_at = now() where id = $1 and deleted_at is null"


async def soft_delete_user(conn: Connection, user_id: str) -> None:
    """Mark a user deleted: their tokens stop working at once."""
    await conn.execute(SOFT_DELETE_USER, user_id)


SELECT_ACTIVE_IDS = "select id from users where id = any($1::text[]) and deleted_at is null"


async def active_user_ids(conn: Connection, user_ids: list[str]) -> set[str]:
    """Which of these ids are active users."""
    rows = await conn.fetch(SELECT_ACTIVE_IDS, user_ids)
    return {row["id"] for row in rows}


APPLY_EXTERNAL_CLAIMS = f"""
update users set
    role = coalesce($2, role),
    email = case
        when $3::text is null then email
        when exists (select 1 from users o where o.email = $3 and o.id <> $1) then email
        else $3
    end
where id = $1 and deleted_at is null
returning {_USER_COLUMNS}
"""


async def apply_external_claims(
    conn: Connection, user_id: str, *, role: Role | None, email: str | None
) -> User | None:
    """Store what an identity provider says (an email another user holds is not taken)."""
    row = await conn.fetchrow(APPLY_EXTERNAL_CLAIMS, user_id, role, email)
    return User.model_validate(dict(row)) if row else None


SET_ROLE = f"""
with old as (
    select id as old_id, role as previous_role from users
    where id = $1 and deleted_at is null for update
)
update users set role = $2 from old where users.id = old.old_id
returning old.previous_role, {_USER_COLUMNS}
"""


async def set_role(conn: Connection, user_id: str, role: Role) -> tuple[User, Role] | None:
    """Give an active user a role; returns the user and the role they had."""
    row = await conn.fetchrow(SET_ROLE, user_id, role)
    if row is None:
        return None
    data = dict(row)
    previous: Role = data.pop("previous_role")
    return User.model_validate(data), previous


SELECT_ID_BY_EMAIL = "select id from users where email = $1 and deleted_at is null"


async def id_by_email(conn: Connection, email: str) -> str | None:
    """The id of the active user with this email."""
    value: str | None = await conn.fetchval(SELECT_ID_BY_EMAIL, email)
    return value


INSERT_PROFILE = f"""
insert into users (account_id, display_name, kind, role) values ($1::uuid, $2, $3, $4)
returning {_USER_COLUMNS}
"""


async def insert_profile(
    conn: Connection, *, account_id: str, display_name: str, kind: str, role: Role
) -> User:
    """Another profile of an account: a user with no login of its own."""
    row = await conn.fetchrow(INSERT_PROFILE, account_id, display_name, kind, role)
    return User.model_validate(dict(row))


SELECT_PROFILES = f"""
select {_USER_COLUMNS} from users
where account_id = $1::uuid and deleted_at is null
order by created_at, id
"""


async def account_profiles(conn: Connection, account_id: str) -> list[User]:
    """The active profiles of an account, oldest (the one holding the login) first."""
    rows = await conn.fetch(SELECT_PROFILES, account_id)
    return [User.model_validate(dict(row)) for row in rows]


SELECT_PROFILE_IDS = "select id from users where account_id = $1::uuid"


async def account_profile_ids(conn: Connection, account_id: str) -> list[str]:
    """Every profile id of an account, deleted ones included."""
    rows = await conn.fetch(SELECT_PROFILE_IDS, account_id)
    return [row["id"] for row in rows]


SELECT_DISPLAY_NAMES = "select id, display_name from users where id = any($1::text[])"


async def display_names(conn: Connection, user_ids: list[str]) -> dict[str, str]:
    """The display names of these users, by id (unknown ids left out)."""
    rows = await conn.fetch(SELECT_DISPLAY_NAMES, user_ids)
    return {row["id"]: row["display_name"] for row in rows}
