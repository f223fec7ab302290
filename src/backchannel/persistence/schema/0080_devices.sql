-- Devices that receive pushes (#17).

create table devices (
    id bigint generated always as identity primary key,
    user_id text not null references users (id) on delete cascade,
    platform text not null check (platform in ('webpush', 'fcm', 'apns')),
    -- The provider's address of the device: an FCM/APNs token or a Web Push endpoint URL.
    token text not null,
    p256dh text,
    auth text,
    app_id text,
    locale text,
    time_zone text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (platform, token)
);
create index devices_user_idx on devices (user_id, updated_at);
