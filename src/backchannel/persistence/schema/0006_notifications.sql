-- Notifications: one row per published notification (its content, who published it, and the
-- result a republish with the same dedupe key answers with), one receipt per recipient.
-- The content is shared by every recipient so one live emit can carry it to all of them.

-- Server API keys for POST /publish and the Redis stream; only a SHA-256 of the key is kept.
create table api_keys (
    id bigint generated always as identity primary key,
    name text not null,
    key_hash bytea not null unique,
    -- The first characters of the key, so an operator can tell keys apart in `apikey list`.
    key_prefix text not null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
-- A revoked key's name may be reused; two live keys never share one.
create unique index api_keys_live_name_idx on api_keys (name) where revoked_at is null;

create table notifications (
    id bigint generated always as identity primary key,
    type text not null,
    title text not null,
    body text,
    data jsonb not null default '{}'::jsonb,
    collapse_key text,
    -- Who published it: an API key's name, `stream` (trusted stream mode) or `backchannel`.
    publisher text not null,
    dedupe_key text,
    recipients integer not null default 0,
    -- Unknown user ids of the original request, so a deduplicated republish answers the same.
    skipped text[] not null default '{}',
    created_at timestamptz not null default now()
);
create unique index notifications_dedupe_idx on notifications (publisher, dedupe_key)
    where dedupe_key is not null;
create index notifications_created_idx on notifications (created_at);

create table notification_receipts (
    user_id text not null references users (id) on delete cascade,
    notification_id bigint not null references notifications (id) on delete cascade,
    collapse_key text,
    read_at timestamptz,
    primary key (user_id, notification_id)
);
create index notification_receipts_unread_idx on notification_receipts (user_id)
    where read_at is null;
-- At most one unread notification per (user, collapse key): a newer one replaces it.
create unique index notification_receipts_collapse_idx
    on notification_receipts (user_id, collapse_key)
    where collapse_key is not null and read_at is null;
create index notification_receipts_notification_idx on notification_receipts (notification_id);

create table notification_preferences (
    user_id text primary key references users (id) on delete cascade,
    muted_types text[] not null default '{}',
    updated_at timestamptz not null default now()
);
