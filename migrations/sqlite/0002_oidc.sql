-- The OpenID provider: clients, signing keys, authorization codes, grants and their tokens.

CREATE TABLE oauth_clients (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- SHA-256 of the generated secret (256 random bits); NULL for public clients.
    secret_hash TEXT,
    -- The validated registration (redirect URIs, scopes, grant types, lifetimes) as JSON.
    settings    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid           TEXT    NOT NULL PRIMARY KEY,
    alg           TEXT    NOT NULL,
    -- PKCS#8, sealed with the master key (AES-256-GCM, labelled with the kid).
    private_key   TEXT    NOT NULL,
    public_jwk    TEXT    NOT NULL,
    master_key_id TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- When it stopped signing; NULL while it is the current key of its algorithm.
    retired_at    INTEGER,
    -- When it leaves the JWKS: after every token it signed has expired.
    publish_until INTEGER
);

CREATE TABLE oauth_grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id    TEXT             REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT,
    code_hash  TEXT,
    scope      TEXT    NOT NULL,
    auth_time  INTEGER,
    acr        TEXT,
    amr        TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CONSTRAINT oauth_grants_code_key UNIQUE (code_hash)
);
CREATE INDEX oauth_grants_session_idx ON oauth_grants (session_id);
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id);

CREATE TABLE authorization_codes (
    code_hash      TEXT    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      INTEGER NOT NULL,
    acr            TEXT,
    amr            TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- Set when exchanged for its successor: presenting it again is reuse.
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_grant_idx ON refresh_tokens (grant_id);

CREATE TABLE access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_grant_idx ON access_tokens (grant_id);

CREATE TABLE consents (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Client assertions (private_key_jwt) already used, kept until they expire: a replay is refused.
CREATE TABLE client_assertions (
    jti_hash   TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
