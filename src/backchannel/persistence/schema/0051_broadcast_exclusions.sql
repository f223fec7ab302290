-- `ppv:broadcast` with `exclude: "owners"`: the subscribers who already bought any of its
-- media, fixed when the broadcast is claimed, so whoever settles it skips the same fans.
alter table broadcasts add column excluded_fan_ids text[] not null default '{}';
