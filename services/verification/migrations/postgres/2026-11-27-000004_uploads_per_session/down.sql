ALTER TABLE app_sessions DROP COLUMN uploads;
