-- A key is identified by its bytes and its rolling start (as in CWA: the same key data at two
-- rolling start intervals are two keys), per submission type.
ALTER TABLE diagnosis_keys DROP CONSTRAINT diagnosis_keys_pkey;
ALTER TABLE diagnosis_keys
    ADD PRIMARY KEY (key_data, rolling_start_interval_number, submission_type);
DROP INDEX diagnosis_keys_by_hour;
CREATE INDEX diagnosis_keys_by_hour
    ON diagnosis_keys (submission_hour, key_data, rolling_start_interval_number, submission_type);
