-- Second factors and sign-ins waiting for one.

-- One authenticator app per user. The secret is sealed with the master key (AES-256-GCM,
-- labelled "totp:<user id>"), so a copy of the database alone cannot mint codes.
CREATE TABLE totp_credentials (
    user_id       TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret        TEXT    NOT NULL,
    master_key_id TEXT    NOT NULL,
    -- NULL while enrolment waits for its first code.
    confirmed_at  BIGINT,
    -- The newest time step accepted: a code for it or an older one is refused (replay).
    last_step     BIGINT    NOT NULL DEFAULT 0,
    created_at    BIGINT    NOT NULL,
    last_used_at  BIGINT
);

-- Single-use codes for when the other factors are lost; stored as digests.
CREATE TABLE recovery_codes (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,
    created_at BIGINT    NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in that passed its first factor and waits for the second, behind a short-lived
-- cookie whose digest is the key.
CREATE TABLE login_flows (
    secret_hash TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr         TEXT    NOT NULL,
    return_to   TEXT    NOT NULL,
    failures    BIGINT    NOT NULL DEFAULT 0,
    created_at  BIGINT    NOT NULL,
    expires_at  BIGINT    NOT NULL
);
CREATE INDEX login_flows_expires_idx ON login_flows (expires_at);
