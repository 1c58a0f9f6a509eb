-- CHAR(64) compared with a text parameter casts the column, so lookups could not use the primary
-- key (sequential scans). VARCHAR is binary-compatible with text: the index applies again.
ALTER TABLE test_results ALTER COLUMN hashed_guid TYPE VARCHAR(64);
