"""`backchannel ledger check`: reconcile the money tables from the database alone.

Each check is one query; a check passes when its query finds nothing. The checks:
every transaction sums to zero; each wallet mirror equals its ledger account; every purchase
keeps in the ledger exactly its amount less what was refunded and withheld, with the fee
reversed by `floor(fee * reversed / amount)`, and its status agrees; every active unlock has a
completed, not wholly reversed purchase; every payouts account equals its payouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backchannel.persistence.database import Connection

UNBALANCED = """
select txn_id::text, currency, sum(amount_cents) as total from ledger_entries
group by txn_id, currency having sum(amount_cents) <> 0
"""

WALLET_MISMATCHES = """
select coalesce(w.user_id, l.user_id) as user_id, coalesce(w.balance_cents, 0) as mirror,
    coalesce(l.total, 0) as ledger_cents
from wallets w
full join (
    select coalesce(x.id, substr(e.account, 8)) as user_id, sum(e.amount_cents) as total
    from ledger_entries e
    left join users x on x.erased_at is not null and 'wallet:' || ledger_pseudonym(x.id) = e.account
    where e.account like 'wallet:%' group by 1
) l on l.user_id = w.user_id
where coalesce(w.balance_cents, 0) <> coalesce(l.total, 0)
"""

# What each purchase left where it went: the creator's and the platform's shares of a sale,
# or the buyer's wallet (top-ups, payments credited instead of unlocking).
PURCHASES = """
select p.id, p.kind, p.status, p.amount_cents, p.fee_cents, p.refunded_cents,
    p.disputed_cents,
    coalesce(sum(e.amount_cents) filter (
        where e.account like 'earnings:%' or e.account = 'platform:fee'
            or ((p.kind = 'wallet_topup' or p.status = 'credited')
                and e.account in (
                    'wallet:' || p.buyer_id, 'wallet:' || ledger_pseudonym(p.buyer_id),
                    'platform:refunds_due'
                ))
    ), 0) as kept,
    coalesce(sum(e.amount_cents) filter (where e.account = 'platform:fee'), 0) as fee_kept
from purchases p left join ledger_entries e on e.purchase_id = p.id
group by p.id order by p.id
"""

UNPAID_MESSAGE_UNLOCKS = """
select u.message_id::text as target, u.user_id from message_unlocks u
where not exists (
    select 1 from purchases p
    where p.buyer_id = u.user_id and p.kind = 'ppv_message'
        and p.target_id = u.message_id::text and p.status = 'completed'
        and p.refunded_cents + p.disputed_cents < p.amount_cents
)
"""

UNPAID_CONTENT_UNLOCKS = """
select u.content_id::text as target, u.user_id from content_unlocks u
where not exists (
    select 1 from purchases p
    where p.buyer_id = u.user_id and p.kind = 'content'
        and p.target_id = u.content_id::text and p.status = 'completed'
        and p.refunded_cents + p.disputed_cents < p.amount_cents
)
"""

# Every creator's payouts account holds exactly what their payouts sent and kept.
PAYOUT_MISMATCHES = """
select coalesce(p.creator_id, l.creator_id) as creator_id, coalesce(p.sent, 0) as sent,
    coalesce(l.total, 0) as ledger_cents
from (
    select creator_id, sum(amount_cents - reversed_cents) as sent from payouts
    where status <> 'failed' group by creator_id
) p
full join (
    select coalesce(x.id, substr(e.account, 9)) as creator_id, sum(e.amount_cents) as total
    from ledger_entries e
    left join users x
        on x.erased_at is not null and 'payouts:' || ledger_pseudonym(x.id) = e.account
    where e.account like 'payouts:%' group by 1
) l on l.creator_id = p.creator_id
where coalesce(p.sent, 0) <> coalesce(l.total, 0)
"""

SETTLED = ("completed", "refunded", "disputed", "credited")


@dataclass
class Report:
    """What was checked and every discrepancy found."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _purchase_problems(row: dict[str, object]) -> list[str]:
    amount, fee = int(str(row["amount_cents"])), int(str(row["fee_cents"]))
    reversed_ = int(str(row["refunded_cents"])) + int(str(row["disputed_cents"]))
    status, kind = row["status"], row["kind"]
    settled = status in SETTLED
    expected = amount - reversed_ if settled else 0
    name = f"purchase {row['id']} ({kind}, {status})"
    problems = []
    if int(str(row["kept"])) != expected:
        problems.append(f"{name} keeps {row['kept']} in the ledger, expected {expected}")
    sale = settled and status != "credited" and kind != "wallet_topup"
    expected_fee = fee - fee * reversed_ // amount if sale else 0
    if int(str(row["fee_kept"])) != expected_fee:
        problems.append(f"{name} keeps a fee of {row['fee_kept']}, expected {expected_fee}")
    if status != "credited" and settled and (status != "completed") != (reversed_ >= amount):
        problems.append(f"{name} has {reversed_} of {amount} reversed")
    return problems


async def check(conn: Connection) -> Report:
    """Run every check; the report lists each check with its count and every discrepancy."""
    report = Report()
    rows = await conn.fetch(UNBALANCED)
    report.checked.append(f"transactions sum to zero ({len(rows)} unbalanced)")
    report.problems += [f"txn {r['txn_id']} sums to {r['total']} {r['currency']}" for r in rows]
    rows = await conn.fetch(WALLET_MISMATCHES)
    wallets = await conn.fetchval("select count(*) from wallets")
    report.checked.append(f"{wallets} wallet mirrors equal their ledger accounts")
    report.problems += [
        f"wallet {r['user_id']} says {r['mirror']}, ledger {r['ledger_cents']}" for r in rows
    ]
    rows = await conn.fetch(PURCHASES)
    report.checked.append(f"{len(rows)} purchases match their ledger rows")
    for row in rows:
        report.problems += _purchase_problems(dict(row))
    rows = await conn.fetch(PAYOUT_MISMATCHES)
    report.checked.append("payouts accounts equal what payouts sent")
    report.problems += [
        f"payouts of {r['creator_id']} sent {r['sent']}, ledger {r['ledger_cents']}" for r in rows
    ]
    for label, sql in (("message", UNPAID_MESSAGE_UNLOCKS), ("content", UNPAID_CONTENT_UNLOCKS)):
        rows = await conn.fetch(sql)
        report.checked.append(f"active {label} unlocks have a live purchase")
        report.problems += [
            f"{label} {r['target']} is unlocked for {r['user_id']} without a live purchase"
            for r in rows
        ]
    return report
