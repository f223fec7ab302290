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


_FACTS = """
select u.id, u.role, u.display_name, p.dm_policy, p.dm_price_cents,
    exists (select 1 from subscriptions s
            where s.fan_id = $1 and s.creator_id = u.id
              and s.status in ('active', 'trialing')) as subscribed
from users u
left join dm_policies p on p.user_id = u.id
"""

SELECT_FACTS_OF_USER = _FACTS + "where u.id = $2"

# A conversation's kind and, for a direct one, the facts of its other member; no row when the
# conversation does not exist.
SELECT_FACTS_OF_CONVERSATION = f"""
select c.kind, f.* from conversations c
left join lateral (
    {_FACTS}
    join conversation_members om on om.user_id = u.id
    where om.conversation_id = c.id and om.user_id <> $1
    limit 1
) f on c.kind = 'direct'
where c.id = $2
"""


def _facts(row: object) -> DirectFacts | None:
    if row is None:
        return None
    r: dict[str, object] = dict(row.items())  # type: ignore[attr-defined]
    if r.get("id") is None:
        return None
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
    )


async def facts_for_user(conn: Connection, sender_id: str, recipient_id: str) -> DirectFacts | None:
    """The facts of a DM from `sender_id` to `recipient_id` (None: no such user)."""
    return _facts(await conn.fetchrow(SELECT_FACTS_OF_USER, sender_id, recipient_id))


async def facts_for_conversation(
    conn: Connection, sender_id: str, conversation_id: int
) -> tuple[str | None, DirectFacts | None]:
    """(the conversation's kind, None when it does not exist; for a direct one the facts of a
    message into it)."""
    row = await conn.fetchrow(SELECT_FACTS_OF_CONVERSATION, sender_id, conversation_id)
    if row is None:
        return None, None
    return str(row["kind"]), _facts(row)
