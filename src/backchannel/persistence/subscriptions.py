"""Fans' subscriptions to creators, as Stripe last told us."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, field_validator

from backchannel.persistence.database import Connection

ACTIVE_STATUSES = ("active", "trialing")


class Subscription(BaseModel):
    """One fan's subscription to one creator."""

    id: str
    fan_id: str
    creator_id: str
    status: str
    stripe_subscription_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    price_cents: int | None
    state_version: datetime | None
    created_at: datetime
    updated_at: datetime

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: object) -> str:
        return str(value)

    @property
    def active(self) -> bool:
        """Whether the fan currently counts as a subscriber."""
        return self.status in ACTIVE_STATUSES


_COLUMNS = """id, fan_id, creator_id, status, stripe_subscription_id, current_period_end,
cancel_at_period_end, price_cents, state_version, created_at, updated_at"""

ENSURE_ROW = """
insert into subscriptions (fan_id, creator_id, status) values ($1, $2, 'incomplete')
on conflict (fan_id, creator_id) do nothing
"""
LOCK_PAIR = f"select {_COLUMNS} from subscriptions where fan_id = $1 and creator_id = $2 for update"


async def lock_or_create(conn: Connection, fan_id: str, creator_id: str) -> Subscription:
    """The pair's row (created `incomplete` if new), locked so state changes serialise."""
    await conn.execute(ENSURE_ROW, fan_id, creator_id)
    row = await conn.fetchrow(LOCK_PAIR, fan_id, creator_id)
    return Subscription.model_validate(dict(row))


SELECT_BY_STRIPE_ID = f"select {_COLUMNS} from subscriptions where stripe_subscription_id = $1"


async def get_by_stripe_id(conn: Connection, stripe_subscription_id: str) -> Subscription | None:
    """The row a Stripe subscription id belongs to."""
    row = await conn.fetchrow(SELECT_BY_STRIPE_ID, stripe_subscription_id)
    return Subscription.model_validate(dict(row)) if row else None


UPDATE_STATE = f"""
update subscriptions set
    status = $2,
    stripe_subscription_id = $3,
    current_period_end = coalesce($4, current_period_end),
    cancel_at_period_end = coalesce($5, cancel_at_period_end),
    price_cents = coalesce($6, price_cents),
    state_version = $7,
    updated_at = now()
where id = $1
returning {_COLUMNS}
"""


async def update_state(
    conn: Connection,
    row_id: int,
    *,
    status: str,
    stripe_subscription_id: str | None,
    current_period_end: datetime | None,
    cancel_at_period_end: bool | None,
    price_cents: int | None,
    version: datetime,
) -> Subscription:
    """Store a newer state (the caller holds the row lock and decided it is newer)."""
    row = await conn.fetchrow(
        UPDATE_STATE,
        row_id,
        status,
        stripe_subscription_id,
        current_period_end,
        cancel_at_period_end,
        price_cents,
        version,
    )
    return Subscription.model_validate(dict(row))


SET_CANCEL = f"""
update subscriptions set cancel_at_period_end = true, updated_at = now()
where id = $1 returning {_COLUMNS}
"""


async def set_cancel_at_period_end(conn: Connection, row_id: int) -> Subscription:
    """Note that the fan asked to stop at the end of the period."""
    row = await conn.fetchrow(SET_CANCEL, row_id)
    return Subscription.model_validate(dict(row))


SELECT_PAIR = f"select {_COLUMNS} from subscriptions where fan_id = $1 and creator_id = $2"


async def get_pair(conn: Connection, fan_id: str, creator_id: str) -> Subscription | None:
    """A fan's subscription to a creator, if any."""
    row = await conn.fetchrow(SELECT_PAIR, fan_id, creator_id)
    return Subscription.model_validate(dict(row)) if row else None


SELECT_FOR_FAN = f"""
select {_COLUMNS} from subscriptions
where fan_id = $1 and stripe_subscription_id is not null order by id desc
"""


async def list_for_fan(conn: Connection, fan_id: str) -> list[Subscription]:
    """Every subscription a fan has had."""
    rows = await conn.fetch(SELECT_FOR_FAN, fan_id)
    return [Subscription.model_validate(dict(row)) for row in rows]


SELECT_ACTIVE_CREATORS = """
select creator_id from subscriptions
where fan_id = $1 and status in ('active', 'trialing') order by creator_id
"""


async def active_creator_ids(conn: Connection, fan_id: str) -> list[str]:
    """The creators a fan currently subscribes to."""
    return [row["creator_id"] for row in await conn.fetch(SELECT_ACTIVE_CREATORS, fan_id)]


SELECT_IS_ACTIVE = """
select exists (select 1 from subscriptions where fan_id = $1 and creator_id = $2
               and status in ('active', 'trialing'))
"""


async def is_active(conn: Connection, fan_id: str, creator_id: str) -> bool:
    """Whether a fan currently subscribes to a creator."""
    return bool(await conn.fetchval(SELECT_IS_ACTIVE, fan_id, creator_id))
