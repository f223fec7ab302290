-- Conversations, their members and messages; per-viewer unlocks of paid messages; and the
-- subscriptions that membership rules (presence, audiences, content) read.

create table conversations (
    id bigint generated always as identity primary key,
    kind text not null check (kind in ('direct', 'group')),
    title text,
    -- For a 1:1 conversation, "<smaller user id> <larger user id>": one conversation per pair.
    direct_key text unique,
    created_by text not null references users (id),
    created_at timestamptz not null default now(),
    -- The last assigned seq; bumping it row-locks the conversation, so seqs have no gaps.
    last_seq bigint not null default 0,
    last_message_at timestamptz
);

create table conversation_members (
    conversation_id bigint not null references conversations (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    joined_at timestamptz not null default now(),
    last_read_seq bigint not null default 0,
    primary key (conversation_id, user_id)
);
create index conversation_members_user_idx on conversation_members (user_id, conversation_id);

-- A creator's paid message to all subscribers: one row here, one message per conversation.
create table broadcasts (
    id bigint generated always as identity primary key,
    creator_id text not null references users (id),
    client_id text not null,
    recipients integer not null default 0,
    created_at timestamptz not null default now(),
    unique (creator_id, client_id)
);

create table messages (
    id bigint generated always as identity primary key,
    conversation_id bigint not null references conversations (id) on delete cascade,
    seq bigint not null,
    sender_id text not null references users (id),
    client_id text not null,
    body text,
    media jsonb not null default '[]'::jsonb,
    price_cents integer check (price_cents is null or price_cents > 0),
    currency text not null default 'usd',
    preview_text text,
    broadcast_id bigint references broadcasts (id),
    created_at timestamptz not null default now(),
    unique (conversation_id, seq)
);
-- message:send is idempotent on (sender, client_id); a broadcast's messages share its client_id.
create unique index messages_sender_client_idx on messages (sender_id, client_id)
    where broadcast_id is null;

-- Who may see a paid message whole besides its sender.
create table message_unlocks (
    message_id bigint not null references messages (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    unlocked_at timestamptz not null default now(),
    primary key (message_id, user_id)
);

create table subscriptions (
    id bigint generated always as identity primary key,
    fan_id text not null references users (id),
    creator_id text not null references users (id),
    -- Stripe's subscription status: incomplete, trialing, active, past_due, canceled, unpaid...
    status text not null,
    stripe_subscription_id text unique,
    current_period_end timestamptz,
    cancel_at_period_end boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (fan_id, creator_id)
);
create index subscriptions_creator_active_idx on subscriptions (creator_id, fan_id)
    where status in ('active', 'trialing');
