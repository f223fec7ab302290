"""Who may message a creator (`dm_policy`, `dm_price_cents`), and the facts a DM rule reads."""

from __future__ import annotations

from dataclasses import dataclass

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class DmPolicy:
    """A user's stored rule; absent means the default of their role."""

    dm_policy: str
    dm_price_cents: int | None


SELECT_POLICY = "select dm_policy, dm_price_cents from dm_policies where user_id = $1"


async def get_policy(conn: Connection, user_id: str) -> DmPolicy | None:
    """The rule `user_id` has set, if any."""
    row = await conn.fetchrow(SELECT_POLICY, user_id)
    return DmPolicy(row["dm_policy"], row["dm_price_cents"]) if row else None


UPSERT_POLICY = """
insert into dm_policies (user_id, dm_policy, dm_price_cents) values ($1, $2, $3)
on conflict (user_id) do update
    set dm_policy = excluded.dm_policy, dm_price_cents = excluded.dm_price_cents
"""


async def set_policy(conn: Connection, user_id: str, policy: DmPolicy) -> None:
    """Store `user_id`'s rule."""
    await conn.execute(UPSERT_POLICY, user_id, policy.dm_policy, policy.dm_price_cents)


@dataclass(frozen=True)
class DirectFacts:
    """What a DM rule needs to know of a message from `sender` to `recipient`."""

    recipient_id: str
    recipient_role: str
    recipient_name: str
    stored_policy: DmPolicy | None
    # The sender subscribes to the recipient (active or trialing).
    subscribed: bool
    # The recipient subscribes to, or bought from, the sender (a creator reaching their fans).
    recipient_is_customer: bool


_FACTS = """
select u.id, u.role, u.display_name, p.dm_policy, p.dm_price_cents,
    exists (select 1 from subscriptions s
            where s.fan_id = $1 and s.creator_id = u.id
              and s.status in ('active', 'trialing')) as subscribed,
    exists (select 1 from subscriptions s
            where s.fan_id = u.id and s.creator_id = $1
              and s.status in ('active', 'trialing'))
        or exists (select 1 from purchases pu
                   where pu.buyer_id = u.id and pu.creator_id = $1
                     and pu.status = 'completed') as customer
from users u
left join dm_policies p on p.user_id = u.id
"""

SELECT_FACTS_OF_USER = _FACTS + "where u.id = $2"

# The other member of a direct conversation; no row for a group (no DM rule applies).
SELECT_FACTS_OF_CONVERSATION = (
    _FACTS
    + """join conversation_members om on om.user_id = u.id
join conversations c on c.id = om.conversation_id
where c.id = $2 and c.kind = 'direct' and om.user_id <> $1
"""
)


def _facts(row: object) -> DirectFacts | None:
    if row is None:
        return None
    r: dict[str, object] = dict(row.items())  # type: ignore[attr-defined]
    policy = (
        DmPolicy(str(r["dm_policy"]), r["dm_price_cents"])  # type: ignore[arg-type]
        if r["dm_policy"] is not None
        else None
    )
    return DirectFacts(
        recipient_id=str(r["id"]),
        recipient_role=str(r["role"]),
        recipient_name=str(r["display_name"]),
        stored_policy=policy,
        subscribed=bool(r["subscribed"]),
        recipient_is_customer=bool(r["customer"]),
    )


async def facts_for_user(conn: Connection, sender_id: str, recipient_id: str) -> DirectFacts | None:
    """The facts of a DM from `sender_id` to `recipient_id` (None: no such user)."""
    return _facts(await conn.fetchrow(SELECT_FACTS_OF_USER, sender_id, recipient_id))


async def facts_for_conversation(
    conn: Connection, sender_id: str, conversation_id: int
) -> DirectFacts | None:
    """The facts of a message into a direct conversation; None for a group (or unknown)."""
    return _facts(await conn.fetchrow(SELECT_FACTS_OF_CONVERSATION, sender_id, conversation_id))
