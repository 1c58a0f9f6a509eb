-- TANs whose keys are stored but whose spending verification has not confirmed yet: written in
-- the same transaction as the keys, deleted when verification confirms. A TAN listed here can
-- never store keys again (its primary key), whatever verification says meanwhile. Nothing links
-- a row to the keys it came with.
CREATE TABLE pending_commits (
    tan            TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
