-- Uploaded media: one row per object family in storage (`<id>/full`, `<id>/thumbnail`,
-- `<id>/preview`), so every stored object is owned by a row and `backchannel media gc` can
-- remove what is not. Messages and content keep a snapshot of a ready item in their `media`
-- JSON (`{"media_id": "..", kind, ...}`); the GIN indexes find every use of one media id.

create table media (
    id bigint generated always as identity primary key,
    owner_id text not null references users (id) on delete cascade,
    status text not null default 'pending' check (status in ('pending', 'ready', 'failed')),
    declared_type text not null,
    declared_size bigint not null check (declared_size > 0),
    filename text,
    content_type text,
    kind text check (kind in ('image', 'video', 'audio')),
    size_bytes bigint,
    width integer,
    height integer,
    duration_s double precision,
    blurhash text,
    -- Which stored objects exist besides `full`: thumbnail, preview, poster.
    variants text[] not null default '{}',
    failure text,
    upload_expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    ready_at timestamptz,
    -- Retired media cannot be sent again; whoever was entitled keeps access.
    retired_at timestamptz
);
create index media_owner_ready_idx on media (owner_id, id desc) where status = 'ready';
create index media_pending_idx on media (created_at) where status = 'pending';

create index messages_media_idx on messages using gin (media jsonb_path_ops);
create index content_media_idx on content using gin (media jsonb_path_ops);
