-- Per-group sign-in policy: optional, required (any second factor) or phishing_resistant
-- (a WebAuthn key). A user is held to the strictest of the global policy and their groups'.
ALTER TABLE groups ADD COLUMN mfa_policy TEXT NOT NULL DEFAULT 'optional';

-- What the second step of a sign-in must prove (the same values).
ALTER TABLE login_flows ADD COLUMN required TEXT NOT NULL DEFAULT 'optional';

-- Expired ceremonies are swept at every new one.
CREATE INDEX webauthn_ceremonies_expires_idx ON webauthn_ceremonies (expires_at);
