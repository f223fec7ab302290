-- The push queue (#17): what must reach a user's devices, written in the transaction that
-- stored the notification, delivered after commit by a worker on any node.

-- One row per (notification, recipient with at least one device). Rows go once sent, skipped
-- (a socket open, the type muted), dropped (read meanwhile) or given up on.
create table push_queue (
    id bigint generated always as identity primary key,
    user_id text not null references users (id) on delete cascade,
    notification_id bigint not null references notifications (id) on delete cascade,
    due_at timestamptz not null default now(),
    -- A node holds the row until then (claimed with `for update skip locked`); a crashed
    -- node's rows are due again once it lapses.
    claimed_until timestamptz,
    -- Held by the recipient's quiet hours: sent with the user's other held rows as one summary.
    held boolean not null default false,
    attempts integer not null default 0,
    -- The devices still to send to after a retryable failure; null: every device of the user.
    device_ids bigint[],
    last_error text,
    created_at timestamptz not null default now()
);
create index push_queue_due_idx on push_queue (due_at, id);
create index push_queue_user_idx on push_queue (user_id) where held;
create index push_queue_notification_idx on push_queue (notification_id);

-- Push preferences beside the live ones: types that never push, and quiet hours
-- (`{start, end, time_zone}`, validated by the API).
alter table notification_preferences
    add column push_muted_types text[] not null default '{}',
    add column quiet_hours jsonb;

-- Digests (`/publish` with `digest: {key, window_s}`): the recipient's open digest
-- notification for a publisher's key, until its window ends.
create table notification_digests (
    user_id text not null references users (id) on delete cascade,
    publisher text not null,
    digest_key text not null,
    notification_id bigint not null references notifications (id) on delete cascade,
    window_ends_at timestamptz not null,
    primary key (user_id, publisher, digest_key)
);
create index notification_digests_notification_idx on notification_digests (notification_id);
