-- The date-of-birth-bound id of a GUID registration (CWA's `keyDob`, `x` + 63 lowercase hex), if
-- the app sent one. Unique: like a hashed GUID, it registers at most once.
ALTER TABLE app_sessions ADD COLUMN hashed_guid_dob TEXT;
CREATE UNIQUE INDEX app_sessions_hashed_guid_dob ON app_sessions (hashed_guid_dob);
-- 1 when the session's TAN was issued for a positive rapid antigen test: once redeemed, the
-- session reads CWA's QUICK_REDEEMED (9) instead of REDEEMED (4), without asking test-result.
ALTER TABLE app_sessions ADD COLUMN rapid_test SMALLINT NOT NULL DEFAULT 0;
