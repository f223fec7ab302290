-- What one viewer has unlocked: every message read joins message_unlocks on (message, viewer),
-- and the planner may instead collect the viewer's unlocks first; either way an index answers.
create index message_unlocks_user_idx on message_unlocks (user_id, message_id);
