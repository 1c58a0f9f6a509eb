-- A key is identified by its bytes and its rolling start (as in CWA: the same key data at two
-- rolling start intervals are two keys), per submission type. SQLite cannot change a primary
-- key in place: the table is rebuilt.
CREATE TABLE diagnosis_keys_new (
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
    PRIMARY KEY (key_data, rolling_start_interval_number, submission_type)
);
INSERT INTO diagnosis_keys_new SELECT * FROM diagnosis_keys;
DROP TABLE diagnosis_keys;
ALTER TABLE diagnosis_keys_new RENAME TO diagnosis_keys;
CREATE INDEX diagnosis_keys_by_hour
    ON diagnosis_keys (submission_hour, key_data, rolling_start_interval_number, submission_type);
