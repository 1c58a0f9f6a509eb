-- Back to one row per key bytes and submission type: the earliest rolling start stays.
DELETE FROM diagnosis_keys d USING diagnosis_keys e
    WHERE d.key_data = e.key_data AND d.submission_type = e.submission_type
      AND d.rolling_start_interval_number > e.rolling_start_interval_number;
ALTER TABLE diagnosis_keys DROP CONSTRAINT diagnosis_keys_pkey;
ALTER TABLE diagnosis_keys ADD PRIMARY KEY (key_data, submission_type);
DROP INDEX diagnosis_keys_by_hour;
CREATE INDEX diagnosis_keys_by_hour ON diagnosis_keys (submission_hour, key_data, submission_type);
