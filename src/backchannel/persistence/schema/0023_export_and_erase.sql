-- Data rights (#14): exports of everything about an account, and erasure after a grace period.

create table account_exports (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    requested_by text not null,
    status text not null default 'pending' check (status in ('pending', 'ready', 'failed')),
    document jsonb,
    created_at timestamptz not null default now(),
    ready_at timestamptz,
    expires_at timestamptz not null default now() + interval '7 days'
);
create index account_exports_account_idx on account_exports (account_id, created_at desc);

-- A deactivated profile (`deleted_at`) is erased once `erase_after` has passed; `erased_at`
-- says it was (its personal fields are gone, its messages are tombstones).
alter table users add column erase_after timestamptz;
alter table users add column erased_at timestamptz;
create index users_erase_due_idx on users (erase_after) where erased_at is null;
