ALTER TABLE app_sessions DROP COLUMN rapid_test;
DROP INDEX app_sessions_hashed_guid_dob;
ALTER TABLE app_sessions DROP COLUMN hashed_guid_dob;
