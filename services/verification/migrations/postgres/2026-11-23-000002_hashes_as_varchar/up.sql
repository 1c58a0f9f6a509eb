-- CHAR(64) compared with a text parameter casts the column, so lookups could not use the indexes
-- (sequential scans). VARCHAR is binary-compatible with text: the indexes apply again.
ALTER TABLE app_sessions ALTER COLUMN token_hash TYPE VARCHAR(64), ALTER COLUMN hashed_guid TYPE VARCHAR(64);
ALTER TABLE tans ALTER COLUMN tan_hash TYPE VARCHAR(64), ALTER COLUMN session_hash TYPE VARCHAR(64);
ALTER TABLE tele_tans ALTER COLUMN tele_tan_hash TYPE VARCHAR(64);
