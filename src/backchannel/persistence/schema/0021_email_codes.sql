-- Email one-time codes (#14), kept as HMACs, and the queue of mail to send after commit.

create table email_codes (
    id bigint generated always as identity primary key,
    email text not null,
    code_hash bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    attempts integer not null default 0,
    -- Set when the code is used, burnt (3 wrong tries) or superseded by a newer code.
    used_at timestamptz
);
create index email_codes_email_idx on email_codes (email, created_at desc);

-- Mail is written in the transaction that decided to send it and sent by a background task,
-- so a slow or failing mail server never holds a request. The body is wiped once sent, and
-- a message not sent by `discard_after` (a code that has expired) is dropped.
create table outgoing_email (
    id bigint generated always as identity primary key,
    to_address text not null,
    subject text not null,
    body text not null,
    created_at timestamptz not null default now(),
    next_attempt_at timestamptz not null default now(),
    discard_after timestamptz not null,
    attempts integer not null default 0,
    sent_at timestamptz,
    last_error text
);
create index outgoing_email_due_idx on outgoing_email (next_attempt_at) where sent_at is null;
