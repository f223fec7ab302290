-- Money: a double-entry ledger, wallets, purchases, content, Stripe event bookkeeping and the
-- outbox that delivers what a committed payment changed.

-- Every movement of money is a set of rows sharing one txn_id whose amounts sum to zero
-- (checked at commit by the constraint trigger below). Accounts are text:
--   wallet:<user id>      what the platform holds for a fan (spendable balance)
--   earnings:<creator id> what the platform owes a creator
--   platform:fee          the platform's revenue
--   stripe:clearing       money that came in (negative) or went back out through Stripe
--   platform:dev_grants   dev-mode top-ups (BACKCHANNEL_DEV_TOPUP), never in production
--   platform:refunds_due  card money for something already owned, in a non-wallet currency
-- An account's balance is the sum of its entries.
create table ledger_entries (
    id bigint generated always as identity primary key,
    txn_id uuid not null,
    account text not null,
    amount_cents bigint not null check (amount_cents <> 0),
    currency text not null,
    purchase_id bigint,
    memo text not null,
    created_at timestamptz not null default now()
);
create index ledger_entries_txn_idx on ledger_entries (txn_id);
create index ledger_entries_account_idx on ledger_entries (account, id);

create function ledger_txn_balanced() returns trigger language plpgsql as $$
declare
    unbalanced text;
begin
    select currency into unbalanced from ledger_entries
    where txn_id = new.txn_id group by currency having sum(amount_cents) <> 0 limit 1;
    if unbalanced is not null then
        raise exception 'ledger transaction % does not balance in %', new.txn_id, unbalanced;
    end if;
    return null;
end
$$;
create constraint trigger ledger_entries_balanced after insert on ledger_entries
    deferrable initially deferred for each row execute function ledger_txn_balanced();

-- A fan's spendable balance: kept beside the ledger so an unlock can debit it with one guarded
-- update (no overdraft under concurrency); tests check it equals the wallet account's sum.
-- It may go below zero only when a refunded or disputed top-up had already been spent.
create table wallets (
    user_id text primary key references users (id) on delete cascade,
    balance_cents bigint not null default 0,
    currency text not null default 'usd',
    updated_at timestamptz not null default now()
);

create table content (
    id bigint generated always as identity primary key,
    creator_id text not null references users (id),
    title text,
    body text,
    media jsonb not null default '[]'::jsonb,
    visibility text not null check (visibility in ('public', 'subscribers', 'ppv')),
    price_cents integer check (price_cents is null or price_cents > 0),
    currency text not null default 'usd',
    preview_text text,
    created_at timestamptz not null default now(),
    check ((visibility = 'ppv') = (price_cents is not null))
);
create index content_creator_idx on content (creator_id, id desc);

create table content_unlocks (
    content_id bigint not null references content (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    unlocked_at timestamptz not null default now(),
    primary key (content_id, user_id)
);

-- One purchase per payment: pending while a card payment is under way, then completed,
-- refunded (revoked), failed, or credited (paid for something already owned: the money went
-- to the buyer's wallet instead).
create table purchases (
    id bigint generated always as identity primary key,
    buyer_id text not null references users (id),
    kind text not null
        check (kind in ('ppv_message', 'content', 'tip', 'wallet_topup', 'subscription')),
    target_id text,
    creator_id text references users (id),
    amount_cents bigint not null check (amount_cents > 0),
    fee_cents bigint not null default 0,
    currency text not null default 'usd',
    pay_with text not null check (pay_with in ('wallet', 'card', 'dev')),
    status text not null default 'pending'
        check (status in ('pending', 'completed', 'refunded', 'failed', 'credited')),
    stripe_session_id text unique,
    stripe_payment_intent_id text unique,
    stripe_invoice_id text unique,
    created_at timestamptz not null default now(),
    completed_at timestamptz,
    refunded_at timestamptz
);
create index purchases_buyer_idx on purchases (buyer_id, id desc);
-- Owning something twice is impossible even if two payments race.
create unique index purchases_owned_once_idx on purchases (buyer_id, kind, target_id)
    where status = 'completed' and kind in ('ppv_message', 'content');

-- Every verified Stripe event id, recorded in the same transaction as its effect.
create table stripe_events (
    id text primary key,
    type text not null,
    created timestamptz not null,
    outcome text not null,
    received_at timestamptz not null default now()
);

-- A refund or dispute seen before the payment it reverses: the payment, when it arrives,
-- must not unlock anything.
create table stripe_reversals (
    payment_intent_id text primary key,
    event_id text not null,
    reason text not null,
    created_at timestamptz not null default now()
);

alter table subscriptions
    add column price_cents integer,
    -- `created` of the Stripe event that last set the state: out-of-order events converge.
    add column state_version timestamptz;

-- What a committed change must tell sockets. Rows are claimed (claimed_until) by the request
-- that wrote them, or after a crash by the background publisher of any node, and marked sent.
create table outbox (
    id bigint generated always as identity primary key,
    -- emit_user: `event` to every socket of `target` in `namespaces`;
    -- emit_room: `event` to the room `target`; join / leave: `target`'s sockets join or leave
    -- the room in payload.room.
    kind text not null check (kind in ('emit_user', 'emit_room', 'join', 'leave')),
    namespaces text[] not null,
    target text not null,
    event text,
    payload jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    claimed_until timestamptz,
    sent_at timestamptz
);
create index outbox_pending_idx on outbox (id) where sent_at is null;
