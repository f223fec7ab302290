-- A paid broadcast is delivered live as soon as its row commits; each subscriber's copy in
-- their 1:1 conversation is written right after ("settled"). The row therefore carries the
-- content, so whichever node settles it (the sender, a reader, or the sweeper after a crash)
-- can write the copies, and `settled_at` tells whether that has happened.

alter table broadcasts
    add column body text,
    add column media jsonb not null default '[]'::jsonb,
    add column price_cents integer check (price_cents is null or price_cents > 0),
    add column currency text not null default 'usd',
    add column preview_text text,
    add column settled_at timestamptz;

-- Broadcasts from before this migration were written with their copies.
update broadcasts set settled_at = created_at;

-- Readers look for unsettled broadcasts on every sync and history read: this stays tiny.
create index broadcasts_unsettled_idx on broadcasts (creator_id) where settled_at is null;

-- At most one copy of a broadcast per conversation, whoever settles it and however often.
create unique index messages_broadcast_copy_idx on messages (broadcast_id, conversation_id)
    where broadcast_id is not null;
