CREATE TABLE test_results_old (
    hashed_guid         TEXT PRIMARY KEY NOT NULL,
    result              SMALLINT NOT NULL CHECK (result BETWEEN 0 AND 4),
    lab_id              TEXT,
    sample_collected_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    redeemed_at         BIGINT
);
INSERT INTO test_results_old SELECT hashed_guid, result, lab_id, sample_collected_at, created_at, updated_at, redeemed_at FROM test_results WHERE result <= 4;
DROP TABLE test_results;
ALTER TABLE test_results_old RENAME TO test_results;
CREATE INDEX test_results_created_at ON test_results (created_at);
