-- A second-factor flow may add a factor to an existing session (an app asked for a stronger
-- sign-in than the session has) instead of starting a new one; it names that session.
ALTER TABLE login_flows ADD COLUMN step_up_session TEXT;
