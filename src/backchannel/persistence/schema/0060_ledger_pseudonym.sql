-- The name an erased user's ledger accounts take ('wallet:<id>' becomes 'wallet:erased-<hash>'):
-- one definition, used by the erasure and by `backchannel ledger check`, so the books of an
-- erased user still reconcile with the wallet and payout rows that keep the user's id.
create or replace function ledger_pseudonym(user_id text) returns text
language sql immutable strict parallel safe
as $$ select 'erased-' || substr(md5(user_id), 1, 16) $$;
