-- How many uploads a session's TANs have made (a phone uploads twice: the past days' keys, then
-- the day's key once the phone releases it). Sessions that uploaded before count one.
ALTER TABLE app_sessions ADD COLUMN uploads INTEGER NOT NULL DEFAULT 0;
UPDATE app_sessions SET uploads = 1 WHERE tan_redeemed_at IS NOT NULL;
