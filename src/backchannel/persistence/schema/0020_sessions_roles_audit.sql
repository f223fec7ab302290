-- Accounts people actually use (#14): roles beyond fan and creator, sessions that can be
-- ended, creator sign-up by approval, and an audit log.

-- Four roles; `role` stays one column with a check so other features can test it cheaply.
alter table users drop constraint users_role_check;
alter table users add constraint users_role_check
    check (role in ('fan', 'creator', 'moderator', 'admin'));

-- One row per login (a refresh-token family): the `sid` claim of every token of that login.
-- Its id is the family id of its refresh tokens.
create table auth_sessions (
    id uuid primary key,
    user_id text not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    last_used_at timestamptz not null default now(),
    user_agent text,
    ip text,
    ended_at timestamptz,
    end_reason text
);
create index auth_sessions_user_idx on auth_sessions (user_id, created_at desc);
-- Nodes load the sessions ended within one access-token lifetime when they (re)link.
create index auth_sessions_ended_idx on auth_sessions (ended_at) where ended_at is not null;

-- With `BACKCHANNEL_CREATOR_SIGNUP=approval`, a creator sign-up is a fan with one of these.
create table creator_requests (
    id uuid primary key default gen_random_uuid(),
    user_id text not null references users (id) on delete cascade,
    status text not null default 'pending' check (status in ('pending', 'approved', 'rejected')),
    created_at timestamptz not null default now(),
    decided_at timestamptz,
    decided_by text
);
create unique index creator_requests_pending_idx on creator_requests (user_id)
    where status = 'pending';
create index creator_requests_created_idx on creator_requests (created_at, id);

-- Who did what to whom. `actor_id` is null for the system or an unknown caller (a failed
-- login names no one); `target_id` is the user, session or request acted on.
create table audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor_id text,
    action text not null,
    target_id text,
    ip text,
    details jsonb not null default '{}'::jsonb
);
create index audit_log_actor_idx on audit_log (actor_id, id desc);
create index audit_log_action_idx on audit_log (action, id desc);
