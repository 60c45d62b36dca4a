-- Single sign-off: one row per logout token owed to a relying party, with its outcome, so
-- admins see which apps were told and which could not be reached.

CREATE TABLE logout_deliveries (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    session_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    -- pending, delivered or failed
    status     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX logout_deliveries_created_idx ON logout_deliveries (created_at);
