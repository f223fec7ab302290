-- Several profiles per account (#14). An account holds the login (the email and password stay
-- on its first profile's row, where they always were) and its sessions; each profile is a
-- user as the rest of the system knows it: its own id, name, role, conversations, wallet.
create table accounts (
    id uuid primary key default gen_random_uuid(),
    created_at timestamptz not null default now()
);

alter table users add column account_id uuid references accounts (id);
-- Free text chosen by the platform: `innovator`, `mentor`, `investor`...
alter table users add column kind text not null default 'default';

-- Every existing user becomes a one-profile account; nothing else about them changes.
-- (A temporary column pairs each new account with its user.)
alter table accounts add column seed_user_id text;
insert into accounts (seed_user_id, created_at) select id, created_at from users;
update users u set account_id = a.id from accounts a where a.seed_user_id = u.id;
alter table accounts drop column seed_user_id;
alter table users alter column account_id set not null;
create index users_account_idx on users (account_id);

-- Whatever inserts a user without naming an account (registration, an external identity
-- provider's first token, an email code) makes a new one-profile account for it.
create function users_default_account() returns trigger language plpgsql as $$
begin
    if new.account_id is null then
        insert into accounts default values returning id into new.account_id;
    end if;
    return new;
end
$$;
create trigger users_default_account before insert on users
    for each row execute function users_default_account();
