-- Safety (#16): blocks, mutes, edits and tombstones, bans, reports, DM rules, filters.

-- One row per block period: unblocking ends the period (ended_at) and keeps it, so what B
-- sent while A blocked them stays hidden from A after the unblock ("restores the future").
create table user_blocks (
    id bigint generated always as identity primary key,
    blocker_id text not null references users (id) on delete cascade,
    blocked_id text not null references users (id) on delete cascade,
    started_at timestamptz not null default clock_timestamp(),
    ended_at timestamptz,
    check (blocker_id <> blocked_id)
);
create unique index user_blocks_current_idx on user_blocks (blocker_id, blocked_id)
    where ended_at is null;
create index user_blocks_blocked_idx on user_blocks (blocked_id, blocker_id);

alter table conversation_members add column muted_until timestamptz;

-- Edits and tombstones. `deleted_by` is 'sender' (a paid message stays whole for its buyers)
-- or 'moderator' (a tombstone for everyone).
alter table messages
    add column edited_at timestamptz,
    add column deleted_at timestamptz,
    add column deleted_by text check (deleted_by in ('sender', 'moderator'));

create table user_bans (
    user_id text primary key references users (id) on delete cascade,
    reason text not null,
    until timestamptz,
    banned_by text references users (id) on delete set null,
    created_at timestamptz not null default now()
);

-- Who may message a creator, and at what price per message.
create table dm_policies (
    user_id text primary key references users (id) on delete cascade,
    dm_policy text not null check (dm_policy in ('everyone', 'subscribers', 'paid', 'nobody')),
    dm_price_cents integer check (dm_price_cents is null or dm_price_cents > 0)
);

create table reports (
    id bigint generated always as identity primary key,
    -- null: opened by the content filters (a `flag` rule), not by a person.
    reporter_id text references users (id) on delete cascade,
    target_type text not null check (target_type in ('message', 'user', 'conversation', 'content')),
    target_id text not null,
    reason text not null,
    note text,
    urgent boolean not null default false,
    status text not null default 'open' check (status in ('open', 'resolved')),
    resolution text,
    resolved_by text references users (id) on delete set null,
    resolved_at timestamptz,
    created_at timestamptz not null default now(),
    unique (reporter_id, target_type, target_id)
);
create index reports_queue_idx on reports (status, urgent desc, id);

-- The admin-managed filter list: one document, replaced whole by `PUT /admin/filters`.
create table content_filters (
    id boolean primary key default true check (id),
    rules jsonb not null,
    updated_at timestamptz not null default now()
);
