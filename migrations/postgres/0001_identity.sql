-- Names sort bytewise (COLLATE "C"), as SQLite's do, so pages come in the same order.
-- Users, groups, memberships, API tokens, browser sessions, setup links and the audit log.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL COLLATE "C",
    email         TEXT,
    display_name  TEXT    NOT NULL,
    password_hash TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE groups (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL COLLATE "C",
    description TEXT    NOT NULL DEFAULT '',
    builtin     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CONSTRAINT groups_name_key UNIQUE (name)
);

CREATE TABLE memberships (
    group_id   TEXT    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE api_tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT ,
    last_used_at BIGINT ,
    revoked_at   BIGINT ,
    CONSTRAINT api_tokens_secret_hash_key UNIQUE (secret_hash),
    CONSTRAINT api_tokens_user_name_key UNIQUE (user_id, name)
);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    secret_hash  TEXT    NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    auth_time    BIGINT  NOT NULL,
    amr          TEXT    NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    CONSTRAINT sessions_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE setup_tokens (
    secret_hash TEXT    NOT NULL PRIMARY KEY,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT 
);

CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY, -- UUIDv7: sorts by time
    at          BIGINT  NOT NULL,
    actor_id    TEXT,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_type TEXT    NOT NULL,
    target_id   TEXT,
    target      TEXT,
    detail      TEXT,
    source_ip   TEXT
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target_id);

INSERT INTO groups (id, name, description, builtin, created_at, updated_at)
VALUES ('00000000-0000-4000-8000-000000000001', 'admins', 'Stackgate administrators', TRUE, 0, 0);
