-- One-time links an admin hands out: an invitation (a new person sets their password and then
-- their second factors) or a password reset. Only the secret's digest is kept; a link is
-- deleted when used, and a new link of the same purpose for the same person replaces the old.
CREATE TABLE account_links (
    secret_hash TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX account_links_user_idx ON account_links (user_id);
