-- When the phone first used its registration token (a poll or a TAN request). Until then a lost
-- registration answer can be retried: the same ids register again and get a new token. Sessions
-- from before count as used.
ALTER TABLE app_sessions ADD COLUMN claimed_at BIGINT;
UPDATE app_sessions SET claimed_at = created_at;
