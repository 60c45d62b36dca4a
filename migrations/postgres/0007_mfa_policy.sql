-- Per-group sign-in policy: optional, required (any second factor) or phishing_resistant
-- (a WebAuthn key). A user is held to the strictest of the global policy and their groups'.
ALTER TABLE groups ADD COLUMN mfa_policy TEXT NOT NULL DEFAULT 'optional';

-- What the second step of a sign-in must prove (the same values).
ALTER TABLE login_flows ADD COLUMN required TEXT NOT NULL DEFAULT 'optional';

-- A changed group policy changes what every member's cached session must meet.
CREATE FUNCTION stackgate_group_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stackgate_sessions', 'all:' || OLD.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER groups_notify_change AFTER UPDATE OR DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION stackgate_group_changed();

-- A session whose secret rotated (step-up, enrolment at sign-in) is dropped from every
-- replica's memory, so the old secret stops working everywhere at once.
CREATE TRIGGER sessions_notify_rotate AFTER UPDATE OF secret_hash ON sessions
    FOR EACH ROW EXECUTE FUNCTION stackgate_session_ended();

-- Expired ceremonies are swept at every new one.
CREATE INDEX webauthn_ceremonies_expires_idx ON webauthn_ceremonies (expires_at);
