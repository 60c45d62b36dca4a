-- The edge proxy: its routes and access policy as admins and installed apps change them, and
-- the sessions it keeps on each app's own host.

-- A route added at runtime (by an admin, or by installing an app). Routes from the config file
-- are not stored.
CREATE TABLE proxy_routes (
    id           TEXT    NOT NULL PRIMARY KEY,
    host         TEXT    NOT NULL,
    path_prefix  TEXT    NOT NULL,
    upstream     TEXT    NOT NULL,
    -- The Cedar resource: App::"<app>".
    app          TEXT    NOT NULL,
    -- Groups that may reach the app by default, space-separated names.
    groups       TEXT    NOT NULL,
    -- Paths reachable without signing in, space-separated prefixes.
    public_paths TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    CONSTRAINT proxy_routes_host_prefix_key UNIQUE (host, path_prefix)
);

-- The admins' own Cedar policies, beside the defaults shipped in policies/ (one row, id 1).
CREATE TABLE access_policies (
    id         BIGINT  NOT NULL PRIMARY KEY,
    text       TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- A one-time code that carries a sign-in from the login host to an app's host, where it is
-- exchanged for that host's own cookie. Single use, short-lived.
CREATE TABLE proxy_codes (
    code_hash  TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    host       TEXT    NOT NULL,
    -- Digest of the state cookie of the browser sent to sign in: only it may redeem the code.
    state_hash TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);

-- A session on an app's host, tied to the SSO session: it ends with it.
CREATE TABLE proxy_sessions (
    secret_hash TEXT    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    host        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX proxy_sessions_session_idx ON proxy_sessions (session_id);
CREATE INDEX proxy_codes_session_idx ON proxy_codes (session_id);

-- Every replica reloads its routes and policies when another one changes them.
CREATE FUNCTION stackgate_proxy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stackgate_sessions', 'r:');
    RETURN NULL;
END;
$$;

CREATE TRIGGER proxy_routes_notify AFTER INSERT OR UPDATE OR DELETE ON proxy_routes
    FOR EACH STATEMENT EXECUTE FUNCTION stackgate_proxy_changed();
CREATE TRIGGER access_policies_notify AFTER INSERT OR UPDATE OR DELETE ON access_policies
    FOR EACH STATEMENT EXECUTE FUNCTION stackgate_proxy_changed();
