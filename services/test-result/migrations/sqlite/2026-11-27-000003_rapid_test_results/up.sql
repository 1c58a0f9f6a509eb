-- Rapid antigen tests' results (CWA's QUICK_* codes 5 to 9) are stored beside the PCR codes.
-- SQLite cannot change a CHECK constraint: the table is rebuilt.
CREATE TABLE test_results_new (
    hashed_guid         TEXT PRIMARY KEY NOT NULL,
    result              SMALLINT NOT NULL CHECK (result BETWEEN 0 AND 9),
    lab_id              TEXT,
    sample_collected_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    redeemed_at         BIGINT
);
INSERT INTO test_results_new SELECT hashed_guid, result, lab_id, sample_collected_at, created_at, updated_at, redeemed_at FROM test_results;
DROP TABLE test_results;
ALTER TABLE test_results_new RENAME TO test_results;
CREATE INDEX test_results_created_at ON test_results (created_at);
