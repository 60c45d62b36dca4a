-- WebAuthn credentials: passkeys (discoverable, user-verified: sign in without a password) and
-- security keys (a second factor after the password).

CREATE TABLE webauthn_credentials (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- passkey or security_key
    kind            TEXT    NOT NULL,
    -- The authenticator's credential id, base64url: a credential belongs to one account only.
    credential_id   TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    -- webauthn-rs's credential record (public key, signature counter, flags), as JSON.
    credential      TEXT    NOT NULL,
    backup_eligible BOOLEAN   NOT NULL,
    created_at      BIGINT    NOT NULL,
    last_used_at    BIGINT,
    CONSTRAINT webauthn_credentials_credential_id_key UNIQUE (credential_id)
);
CREATE INDEX webauthn_credentials_user_idx ON webauthn_credentials (user_id);

-- A WebAuthn ceremony in progress: the server-side state between the options sent to the
-- browser and its answer. Single use, short-lived.
CREATE TABLE webauthn_ceremonies (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    expires_at BIGINT    NOT NULL
);
