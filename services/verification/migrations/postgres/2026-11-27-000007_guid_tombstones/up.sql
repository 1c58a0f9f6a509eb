-- A hashed GUID (or date-of-birth-bound id) whose session retention deleted, kept until
-- test-result no longer holds a result for it (`held_until`, unix seconds on test-result's
-- clock, the last second it is held): until then the id cannot register again. Nothing but the
-- id and that time; nothing links a row to a session, a TAN or another row.
CREATE TABLE guid_tombstones (
    hashed_guid VARCHAR(64) PRIMARY KEY,
    held_until  BIGINT NOT NULL
);
CREATE INDEX guid_tombstones_by_held_until ON guid_tombstones (held_until);
