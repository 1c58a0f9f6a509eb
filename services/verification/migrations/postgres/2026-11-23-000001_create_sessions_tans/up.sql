-- Every secret is stored only as its lowercase hex SHA-256. Times are unix seconds.
-- source: 1 = hashed GUID (QR code), 2 = teleTAN.
CREATE TABLE app_sessions (
    token_hash      CHAR(64) PRIMARY KEY,
    hashed_guid     CHAR(64) UNIQUE,
    source          SMALLINT NOT NULL CHECK (source IN (1, 2)),
    tans_issued     INTEGER NOT NULL DEFAULT 0,
    tan_redeemed_at BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX app_sessions_created_at ON app_sessions (created_at);

CREATE TABLE tans (
    tan_hash       CHAR(64) PRIMARY KEY,
    session_hash   CHAR(64) NOT NULL,
    source         SMALLINT NOT NULL CHECK (source IN (1, 2)),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    reservation_id VARCHAR(36),
    reserved_until BIGINT,
    redeemed_at    BIGINT
);
CREATE INDEX tans_session_hash ON tans (session_hash);
CREATE INDEX tans_created_at ON tans (created_at);

-- kind: 1 = TEST.
CREATE TABLE tele_tans (
    tele_tan_hash CHAR(64) PRIMARY KEY,
    kind          SMALLINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX tele_tans_created_at ON tele_tans (created_at);
