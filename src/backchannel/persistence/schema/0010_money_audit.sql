-- Money you can audit: refunds and disputes as recorded totals, ordered wallet versions, and
-- the server wallet API's idempotency records.

-- What has been reversed of each purchase, applied to the ledger: refunds and withheld
-- disputes. A purchase is `refunded` or `disputed` (unlock revoked) only once the two together
-- reach its amount; below that it stays `completed` and keeps its unlock.
alter table purchases
    add column refunded_cents bigint not null default 0 check (refunded_cents >= 0),
    add column disputed_cents bigint not null default 0 check (disputed_cents >= 0),
    -- null (never disputed), withheld, reinstated (won), lost (final).
    add column dispute_status text
        check (dispute_status in ('withheld', 'reinstated', 'lost')),
    add constraint purchases_reversed_within_amount
        check (refunded_cents + disputed_cents <= amount_cents);
alter table purchases drop constraint purchases_status_check;
alter table purchases add constraint purchases_status_check
    check (status in ('pending', 'completed', 'refunded', 'disputed', 'failed', 'credited'));

-- Everything Stripe told us about refunds, keyed so that replays and any order converge:
-- each Refund object by id (failed/canceled is sticky), and each Charge's largest reported
-- `amount_refunded` (a running total that only grows while no refund fails).
create table stripe_refunds (
    id text primary key,
    payment_intent_id text,
    purchase_id bigint,
    amount_cents bigint not null check (amount_cents >= 0),
    failed boolean not null default false,
    updated_at timestamptz not null default now()
);
create index stripe_refunds_pi_idx on stripe_refunds (payment_intent_id);
create index stripe_refunds_purchase_idx on stripe_refunds (purchase_id);

create table stripe_charge_refunds (
    charge_id text primary key,
    payment_intent_id text,
    purchase_id bigint,
    amount_refunded bigint not null check (amount_refunded >= 0)
);
create index stripe_charge_refunds_pi_idx on stripe_charge_refunds (payment_intent_id);
create index stripe_charge_refunds_purchase_idx on stripe_charge_refunds (purchase_id);

-- Each dispute at the furthest stage seen: 1 withheld (created, funds_withdrawn),
-- 2 reinstated (funds_reinstated, closed won), 3 lost (closed lost). Stages only go up, so the
-- end state depends on the set of events, not their order.
create table stripe_disputes (
    id text primary key,
    payment_intent_id text,
    purchase_id bigint,
    amount_cents bigint not null check (amount_cents >= 0),
    stage smallint not null check (stage between 1 and 3),
    updated_at timestamptz not null default now()
);
create index stripe_disputes_pi_idx on stripe_disputes (payment_intent_id);
create index stripe_disputes_purchase_idx on stripe_disputes (purchase_id);

-- The wallet's version grows by one with every change of its balance, in the same statement:
-- clients order `wallet:balance` events by it.
alter table wallets add column version bigint not null default 0;

-- Credits and debits by other backends (POST /server/wallets/{user_id}/credits|debits): one row
-- per (API key, idempotency key), holding the request and the first answer.
create table wallet_grants (
    key_name text not null,
    idempotency_key text not null,
    user_id text not null references users (id) on delete cascade,
    direction text not null check (direction in ('credit', 'debit')),
    amount_cents bigint not null check (amount_cents > 0),
    currency text not null,
    reason text not null,
    entry_id bigint not null,
    balance_cents bigint not null,
    version bigint not null,
    created_at timestamptz not null default now(),
    primary key (key_name, idempotency_key)
);

-- Superseded by stripe_refunds / stripe_disputes, which remember amounts, not just that
-- something happened.
drop table stripe_reversals;
