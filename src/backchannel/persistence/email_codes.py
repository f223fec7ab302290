"""One-time email codes (hashed) and the outgoing mail queue."""

from __future__ import annotations

from dataclasses import dataclass

from backchannel.persistence.database import Connection

LOCK_ADDRESS = "select pg_advisory_xact_lock(hashtextextended('email-code:' || $1, 0))"


async def lock_address(conn: Connection, email: str) -> None:
    """Serialise code requests for one address until the transaction ends."""
    await conn.execute(LOCK_ADDRESS, email)


RECENT_CODES = """
select count(*) as n, min(created_at) + interval '1 hour' - now() as wait
from email_codes where email = $1 and created_at > now() - interval '1 hour'
"""


async def codes_in_last_hour(conn: Connection, email: str) -> tuple[int, float]:
    """How many codes this address got in the last hour, and seconds until the oldest ages."""
    row = await conn.fetchrow(RECENT_CODES, email)
    wait = row["wait"].total_seconds() if row["wait"] is not None else 0.0
    return int(row["n"]), max(wait, 0.0)


SUPERSEDE = "update email_codes set used_at = now() where email = $1 and used_at is null"

INSERT_CODE = """
insert into email_codes (email, code_hash, expires_at)
values ($1, $2, now() + make_interval(secs => $3))
"""


async def insert_code(conn: Connection, email: str, code_hash: bytes, ttl_seconds: int) -> None:
    """Store a new code for the address; any earlier live code stops working."""
    await conn.execute(SUPERSEDE, email)
    await conn.execute(INSERT_CODE, email, code_hash, ttl_seconds)


@dataclass(frozen=True)
class LiveCode:
    """The address's current code, locked for this transaction."""

    id: int
    code_hash: bytes
    attempts: int


SELECT_LIVE = """
select id, code_hash, attempts from email_codes
where email = $1 and used_at is null and expires_at > now()
order by created_at desc limit 1
for update
"""


async def lock_live_code(conn: Connection, email: str) -> LiveCode | None:
    """The code that can still be used for this address."""
    row = await conn.fetchrow(SELECT_LIVE, email)
    return LiveCode(**dict(row)) if row else None


WRONG_TRY = """
update email_codes set attempts = attempts + 1,
    used_at = case when attempts + 1 >= $2 then now() else used_at end
where id = $1
"""


async def count_wrong_try(conn: Connection, code_id: int, max_attempts: int) -> None:
    """A wrong code was tried; the `max_attempts`-th burns the code."""
    await conn.execute(WRONG_TRY, code_id, max_attempts)


USE_CODE = "update email_codes set used_at = now() where id = $1"


async def use_code(conn: Connection, code_id: int) -> None:
    """The code worked: it never works again."""
    await conn.execute(USE_CODE, code_id)


# -- outgoing mail ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """A message to send."""

    id: int
    to_address: str
    subject: str
    body: str
    attempts: int


ENQUEUE = """
insert into outgoing_email (to_address, subject, body, discard_after)
values ($1, $2, $3, now() + make_interval(secs => $4))
"""


async def enqueue(
    conn: Connection, *, to: str, subject: str, body: str, discard_after_seconds: float
) -> None:
    """Queue a message in the caller's transaction; it is sent after commit."""
    await conn.execute(ENQUEUE, to, subject, body, discard_after_seconds)


# A claim is a lease: a node that dies mid-send leaves the row due again after it.
CLAIM_DUE = """
update outgoing_email set next_attempt_at = now() + make_interval(secs => $2)
where id in (
    select id from outgoing_email
    where sent_at is null and next_attempt_at <= now() and discard_after > now()
    order by id limit $1
    for update skip locked
)
returning id, to_address, subject, body, attempts
"""


async def claim_due(conn: Connection, limit: int, lease_seconds: float) -> list[Mail]:
    """Take up to `limit` due messages for `lease_seconds`."""
    rows = await conn.fetch(CLAIM_DUE, limit, lease_seconds)
    return [Mail(**dict(row)) for row in rows]


MARK_SENT = "update outgoing_email set sent_at = now(), body = '' where id = $1"


async def mark_sent(conn: Connection, mail_id: int) -> None:
    """Sent: the body (which may hold a code) is not kept."""
    await conn.execute(MARK_SENT, mail_id)


MARK_FAILED = """
update outgoing_email set attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + make_interval(secs => $3)
where id = $1
"""


async def mark_failed(conn: Connection, mail_id: int, error: str, retry_in: float) -> None:
    """Sending failed; try again after `retry_in` seconds."""
    await conn.execute(MARK_FAILED, mail_id, error[:500], retry_in)


NEXT_DUE = """
select extract(epoch from min(next_attempt_at) - now()) from outgoing_email
where sent_at is null and discard_after > now()
"""


async def seconds_until_next(conn: Connection) -> float | None:
    """When the next message falls due (None: nothing queued)."""
    value = await conn.fetchval(NEXT_DUE)
    return float(value) if value is not None else None
