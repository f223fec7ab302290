-- Users and their sessions. User ids are text: our own are UUIDs, and a user provisioned
-- from an external identity provider keeps that provider's `sub` as their id.
create table users (
    id text primary key default gen_random_uuid()::text,
    email text unique,
    password_hash text,
    display_name text not null,
    role text not null default 'fan' check (role in ('fan', 'creator')),
    bio text not null default '',
    avatar_url text,
    subscription_price_cents integer not null default 0 check (subscription_price_cents >= 0),
    created_at timestamptz not null default now(),
    deleted_at timestamptz,
    last_seen_at timestamptz
);

-- Opaque refresh tokens, stored as SHA-256 hashes; one family per login.
create table refresh_tokens (
    id bigint generated always as identity primary key,
    user_id text not null references users (id) on delete cascade,
    family_id uuid not null,
    token_hash bytea not null unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    rotated_at timestamptz,
    revoked_at timestamptz
);
create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_user_idx on refresh_tokens (user_id);
