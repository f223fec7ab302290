"""Everything stored about an account's profiles (for an export), and erasing it.

Each read returns JSON built by Postgres (`jsonb_agg(to_jsonb(row))`), so the export holds
what the tables hold, column for column, without a model per table.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from backchannel.persistence.database import Connection

_ROWS = "coalesce(jsonb_agg(to_jsonb(t) order by t.created_at), '[]'::jsonb)"

_PER_PROFILE: dict[str, str] = {
    "purchases": f"select {_ROWS} from purchases t where buyer_id = $1",
    "subscriptions": f"select {_ROWS} from subscriptions t where fan_id = $1",
    "subscribers": f"select {_ROWS} from subscriptions t where creator_id = $1",
    "wallet": (
        "select coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb) from wallets t where user_id = $1"
    ),
    "ledger": (
        f"select {_ROWS} from ledger_entries t "
        "where account in ('wallet:' || $1, 'earnings:' || $1)"
    ),
    "content": f"select {_ROWS} from content t where creator_id = $1",
    "notifications": (
        "select coalesce(jsonb_agg(jsonb_build_object("
        "'id', n.id, 'type', n.type, 'title', n.title, 'body', n.body, 'data', n.data, "
        "'created_at', n.created_at, 'read_at', r.read_at) order by n.id), '[]'::jsonb) "
        "from notification_receipts r join notifications n on n.id = r.notification_id "
        "where r.user_id = $1"
    ),
    "sessions": (
        "select coalesce(jsonb_agg(jsonb_build_object('id', t.id, 'created_at', t.created_at, "
        "'last_used_at', t.last_used_at, 'user_agent', t.user_agent, 'ip', t.ip, "
        "'ended_at', t.ended_at) order by t.created_at), '[]'::jsonb) "
        "from auth_sessions t where user_id = $1"
    ),
}


async def profile_records(conn: Connection, user_id: str) -> dict[str, Any]:
    """The rows about one profile, table by table."""
    records: dict[str, Any] = {}
    for name, sql in _PER_PROFILE.items():
        records[name] = json.loads(await conn.fetchval(sql, user_id))
    return records


SELECT_CONVERSATION_IDS = """
select conversation_id from conversation_members where user_id = $1 order by conversation_id
"""


async def conversation_ids(conn: Connection, user_id: str) -> list[int]:
    """The conversations a profile belongs to."""
    rows = await conn.fetch(SELECT_CONVERSATION_IDS, user_id)
    return [int(row["conversation_id"]) for row in rows]


INSERT_EXPORT = """
insert into account_exports (account_id, requested_by) values ($1::uuid, $2) returning id
"""


async def insert_export(conn: Connection, account_id: str, requested_by: str) -> UUID:
    """A pending export."""
    value: UUID = await conn.fetchval(INSERT_EXPORT, account_id, requested_by)
    return value


FINISH_EXPORT = """
update account_exports set status = $2, document = $3::jsonb, ready_at = now() where id = $1
"""


async def finish_export(conn: Connection, export_id: UUID, document: dict[str, Any] | None) -> None:
    """Store the document (ready) or record the failure (no document)."""
    status = "ready" if document is not None else "failed"
    payload = json.dumps(document, default=str) if document is not None else None
    await conn.execute(FINISH_EXPORT, export_id, status, payload)


SELECT_EXPORT = """
select id, status, created_at, ready_at, expires_at, expires_at <= now() as expired
from account_exports where id = $1 and account_id = $2::uuid
"""


async def get_export(conn: Connection, export_id: UUID, account_id: str) -> dict[str, Any] | None:
    """An export of this account (not its document)."""
    row = await conn.fetchrow(SELECT_EXPORT, export_id, account_id)
    return dict(row) if row else None


SELECT_DOCUMENT = """
select document::text from account_exports
where id = $1 and account_id = $2::uuid and status = 'ready' and expires_at > now()
"""


async def export_document(conn: Connection, export_id: UUID, account_id: str) -> str | None:
    """The JSON document of a ready, unexpired export."""
    value: str | None = await conn.fetchval(SELECT_DOCUMENT, export_id, account_id)
    return value


# -- deactivation and erasure ------------------------------------------------------------------

DEACTIVATE = """
update users set deleted_at = coalesce(deleted_at, now()),
    erase_after = coalesce(erase_after, now() + make_interval(days => $2))
where account_id = $1::uuid and erased_at is null
returning id
"""


async def deactivate(conn: Connection, account_id: str, grace_days: int) -> list[str]:
    """Every profile of the account stops working now and is due for erasure later."""
    rows = await conn.fetch(DEACTIVATE, account_id, grace_days)
    return [row["id"] for row in rows]


SELECT_DUE = """
select distinct account_id::text from users
where erased_at is null and erase_after <= now()
limit $1
"""


async def accounts_due(conn: Connection, limit: int = 100) -> list[str]:
    """Accounts whose grace period has passed."""
    rows = await conn.fetch(SELECT_DUE, limit)
    return [row["account_id"] for row in rows]


LOCK_PROFILES = """
select id from users where account_id = $1::uuid and erased_at is null order by id for update
"""

ERASE_USERS = """
update users set email = null, password_hash = null, display_name = 'Deleted user', bio = '',
    avatar_url = null, subscription_price_cents = 0, last_seen_at = null,
    deleted_at = coalesce(deleted_at, now()), erased_at = now()
where id = any($1::text[])
"""

# A sent message keeps its place (`seq`): conversations stay gap-free for everyone else.
TOMBSTONE_MESSAGES = """
update messages set body = null, media = '[]'::jsonb, preview_text = null
where sender_id = any($1::text[])
"""

ERASE_CONTENT = """
update content set title = null, body = null, media = '[]'::jsonb, preview_text = null
where creator_id = any($1::text[])
"""

# Books must balance and be kept: the rows stay, their owner becomes a pseudonym.
PSEUDONYMISE_LEDGER = """
update ledger_entries l set account = split_part(l.account, ':', 1) || ':'
    || ledger_pseudonym(substr(l.account, strpos(l.account, ':') + 1))
where l.account = any(
    select kind || ':' || id from unnest($1::text[]) as id,
        unnest(array['wallet', 'earnings', 'payouts']) as kind
)
"""

FORGET_PERSONAL = [
    "delete from notification_receipts where user_id = any($1::text[])",
    "delete from auth_sessions where user_id = any($1::text[])",
    "delete from refresh_tokens where user_id = any($1::text[])",
    "delete from notification_preferences where user_id = any($1::text[])",
    # Nothing is pushed to an erased profile any more, and its devices are forgotten.
    "delete from push_queue where user_id = any($1::text[])",
    "delete from notification_digests where user_id = any($1::text[])",
    "delete from devices where user_id = any($1::text[])",
    # Its stored objects, owned by no row any more, go with the next `backchannel media gc`.
    "delete from media where owner_id = any($1::text[])",
]

SELECT_EMAILS = "select email from users where id = any($1::text[]) and email is not null"
FORGET_CODES = "delete from email_codes where email = any($1::text[])"

ACTIVE_STRIPE_SUBSCRIPTIONS = """
select id, stripe_subscription_id from subscriptions
where fan_id = any($1::text[]) and stripe_subscription_id is not null
  and status in ('active', 'trialing', 'past_due') and not cancel_at_period_end
"""


async def erase(conn: Connection, account_id: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Erase every profile of the account; returns the profile ids and the Stripe
    subscriptions (row id, Stripe id) the caller must cancel."""
    rows = await conn.fetch(LOCK_PROFILES, account_id)
    ids = [row["id"] for row in rows]
    if not ids:
        return [], []
    emails = await conn.fetch(SELECT_EMAILS, ids)
    stripe_rows = await conn.fetch(ACTIVE_STRIPE_SUBSCRIPTIONS, ids)
    await conn.execute(ERASE_USERS, ids)
    await conn.execute(TOMBSTONE_MESSAGES, ids)
    await conn.execute(ERASE_CONTENT, ids)
    await conn.execute(PSEUDONYMISE_LEDGER, ids)
    for statement in FORGET_PERSONAL:
        await conn.execute(statement, ids)
    await conn.execute(FORGET_CODES, [r["email"] for r in emails])
    return ids, [(int(r["id"]), str(r["stripe_subscription_id"])) for r in stripe_rows]


SELECT_ACCOUNT_BY_EMAIL = """
select account_id::text from users where email = $1 and erased_at is null
"""


async def account_by_email(conn: Connection, email: str) -> str | None:
    """The account holding this email (active or deactivated, not erased)."""
    value: str | None = await conn.fetchval(SELECT_ACCOUNT_BY_EMAIL, email)
    return value


MARK_CANCELLING = "update subscriptions set cancel_at_period_end = true where id = $1"


async def mark_cancelling(conn: Connection, subscription_row_id: int) -> None:
    """Stripe was asked to end this subscription at its period's end."""
    await conn.execute(MARK_CANCELLING, subscription_row_id)


SELECT_ERASE_AFTER = "select min(erase_after) from users where id = any($1::text[])"


async def erase_after(conn: Connection, user_ids: list[str]) -> datetime | None:
    """When these deactivated profiles are due for erasure."""
    value: datetime | None = await conn.fetchval(SELECT_ERASE_AFTER, user_ids)
    return value
