-- The outbox keeps a row whose publish failed: how often it was tried, when it may be tried
-- again (backoff), the last error, and when it was given up on (dead letter, kept for the
-- operator: `backchannel outbox list --dead`). A dead row never blocks the rows behind it.
alter table outbox
    add column attempts integer not null default 0,
    add column next_attempt_at timestamptz,
    add column last_error text,
    add column dead_at timestamptz;

drop index outbox_pending_idx;
create index outbox_pending_idx on outbox (id) where sent_at is null and dead_at is null;
create index outbox_dead_idx on outbox (id) where dead_at is not null;
