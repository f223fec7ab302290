-- Creator payouts through Stripe Connect: one Express account per creator, and one row per
-- payout whose ledger movement (earnings:<creator> -> payouts:<creator>) is written with it.

create table connect_accounts (
    creator_id text primary key references users (id) on delete cascade,
    account_id text not null unique,
    payouts_enabled boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table payouts (
    id bigint generated always as identity primary key,
    creator_id text not null references users (id),
    amount_cents bigint not null check (amount_cents > 0),
    currency text not null,
    -- pending until Stripe answers; paid with a transfer; failed (money back) if Stripe refused.
    status text not null check (status in ('pending', 'paid', 'failed', 'reversed')),
    transfer_id text unique,
    -- What `transfer.reversed` reported taken back (a running total), already given back.
    reversed_cents bigint not null default 0 check (reversed_cents >= 0),
    created_at timestamptz not null default now(),
    check (reversed_cents <= amount_cents)
);
create index payouts_creator_idx on payouts (creator_id, id desc);
