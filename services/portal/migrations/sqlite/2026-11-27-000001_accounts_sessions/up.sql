-- Officers' and administrators' accounts. Local accounts carry an argon2id password hash and a
-- TOTP secret; accounts signed in through OpenID Connect carry the provider's subject instead.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username VARCHAR(64) NOT NULL UNIQUE,
    display_name VARCHAR(128) NOT NULL,
    role VARCHAR(16) NOT NULL,
    oidc_subject VARCHAR(255) UNIQUE,
    password_hash VARCHAR(255),
    totp_secret VARCHAR(64),
    last_totp_step BIGINT,
    enrolment_hash VARCHAR(64) UNIQUE,
    enrolment_expires_at BIGINT,
    enrolled_at BIGINT,
    disabled_at BIGINT,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);

-- Server-side sessions; the cookie holds the id, the table only its SHA-256.
CREATE TABLE sessions (
    id_hash VARCHAR(64) PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

-- Sign-ins through OpenID Connect under way: the state's SHA-256 and what finishing needs.
CREATE TABLE oidc_logins (
    state_hash VARCHAR(64) PRIMARY KEY,
    pending TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- teleTANs issued per officer and clock hour (the per-officer limit).
CREATE TABLE issue_counts (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    issued INTEGER NOT NULL,
    PRIMARY KEY (account_id, hour)
);
