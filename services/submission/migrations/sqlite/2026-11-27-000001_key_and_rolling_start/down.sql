-- Back to one row per key bytes and submission type: the earliest rolling start stays.
CREATE TABLE diagnosis_keys_old (
    key_data                      BLOB NOT NULL CHECK (length(key_data) = 16),
    submission_type               INTEGER NOT NULL,
    rolling_start_interval_number INTEGER NOT NULL,
    rolling_period                INTEGER NOT NULL,
    transmission_risk_level       INTEGER NOT NULL,
    report_type                   INTEGER NOT NULL,
    days_since_onset_of_symptoms  INTEGER NOT NULL,
    origin                        TEXT NOT NULL,
    visited_countries             TEXT NOT NULL,
    consent_to_federation         BOOLEAN NOT NULL,
    submission_hour               BIGINT NOT NULL,
    PRIMARY KEY (key_data, submission_type)
);
INSERT OR IGNORE INTO diagnosis_keys_old
    SELECT * FROM diagnosis_keys ORDER BY rolling_start_interval_number;
DROP TABLE diagnosis_keys;
ALTER TABLE diagnosis_keys_old RENAME TO diagnosis_keys;
CREATE INDEX diagnosis_keys_by_hour ON diagnosis_keys (submission_hour, key_data, submission_type);
