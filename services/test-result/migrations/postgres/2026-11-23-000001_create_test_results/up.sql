-- Test results by hashed GUID (lowercase hex SHA-256). Times are unix seconds.
CREATE TABLE test_results (
    hashed_guid         CHAR(64) PRIMARY KEY,
    result              SMALLINT NOT NULL CHECK (result BETWEEN 0 AND 4),
    lab_id              VARCHAR(64),
    sample_collected_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    redeemed_at         BIGINT
);
CREATE INDEX test_results_created_at ON test_results (created_at);
