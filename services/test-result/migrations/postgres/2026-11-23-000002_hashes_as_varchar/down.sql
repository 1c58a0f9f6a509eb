ALTER TABLE test_results ALTER COLUMN hashed_guid TYPE CHAR(64);
