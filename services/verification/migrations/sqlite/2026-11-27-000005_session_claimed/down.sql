ALTER TABLE app_sessions DROP COLUMN claimed_at;
