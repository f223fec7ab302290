-- Signed outbound webhooks (#17 part 4): endpoints a platform backend registers with its
-- server API key, the events that happened, and one delivery row per (event, endpoint).
-- Kept apart from `outbox` (cluster live events): these rows live for days, with retries.

create table webhook_endpoints (
    id bigint generated always as identity primary key,
    -- The API key name that created it: only that key's holder sees or changes it.
    owner text not null,
    url text not null,
    -- Event types, or '{*}' for every type.
    events text[] not null,
    description text,
    include_bodies boolean not null default false,
    secret text not null,
    -- Since when deliveries have failed with no success since (null while healthy): the
    -- window start of the first delivery that failed. Disabled once older than the window.
    failing_since timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index webhook_endpoints_owner_idx on webhook_endpoints (owner, id);

create table webhook_events (
    id uuid primary key default gen_random_uuid(),
    type text not null,
    data jsonb not null,
    -- What only endpoints with `include_bodies` receive, merged into `data` (a message's body).
    private jsonb,
    created_at timestamptz not null default now()
);
create index webhook_events_created_idx on webhook_events (created_at);

create table webhook_deliveries (
    id bigint generated always as identity primary key,
    event_id uuid not null references webhook_events (id) on delete cascade,
    endpoint_id bigint not null references webhook_endpoints (id) on delete cascade,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- Retries stop when this is older than the retry window (a manual retry restarts it).
    window_start timestamptz not null default now(),
    -- A node holds the delivery while it is attempting it; another may take it after this.
    lease_until timestamptz,
    lease_token uuid,
    last_attempt_at timestamptz,
    last_status integer,
    last_error text,
    last_latency_ms integer,
    delivered_at timestamptz,
    created_at timestamptz not null default now(),
    unique (event_id, endpoint_id)
);
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at)
    where status = 'pending';
create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, id desc);
