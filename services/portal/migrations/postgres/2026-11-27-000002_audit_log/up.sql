-- The audit log: append-only and hash-chained (the encoding is documented in src/audit.rs).
-- Ids are assigned from audit_head, never from a sequence: they have no gaps, so a deleted row is
-- seen as a missing id as well as by the chain. No foreign key to accounts: an entry outlives the
-- account it names.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_kind VARCHAR(16) NOT NULL CHECK (actor_kind IN ('account', 'unknown', 'system')),
    actor_id BIGINT,
    action VARCHAR(32) NOT NULL,
    target BIGINT,
    detail VARCHAR(64),
    prev_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL,
    CHECK ((actor_kind = 'account') = (actor_id IS NOT NULL))
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, action, at);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- One row: the newest entry (appends lock it, so the chain never forks) and the retention
-- anchor, the newest entry retention deleted (0 and 64 zeros while it deleted none).
CREATE TABLE audit_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id BIGINT NOT NULL,
    last_hash VARCHAR(64) NOT NULL,
    anchor_id BIGINT NOT NULL,
    anchor_hash VARCHAR(64) NOT NULL
);
INSERT INTO audit_head (singleton, last_id, last_hash, anchor_id, anchor_hash) VALUES (
    1,
    0, '0000000000000000000000000000000000000000000000000000000000000000',
    0, '0000000000000000000000000000000000000000000000000000000000000000'
);

-- Append-only in the database too: no UPDATE, no TRUNCATE, and DELETE only of entries at or
-- below the retention anchor (retention moves the anchor first, in the same transaction).
-- Someone who can drop these triggers can still edit or delete rows: verification detects that.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.id <= (SELECT anchor_id FROM audit_head WHERE singleton = 1) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only: only retention deletes, oldest first';
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
