-- Replicas keep live sessions in memory; these triggers tell every replica, at commit, which
-- sessions ended and which users changed (disabled, deleted, group membership), through
-- NOTIFY on the channel `stackgate_sessions`. Payloads: `s:<session id>`, `u:<user id>`.

CREATE FUNCTION stackgate_session_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stackgate_sessions', 's:' || OLD.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_notify_end AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION stackgate_session_ended();

CREATE FUNCTION stackgate_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('stackgate_sessions', 'u:' || NEW.user_id);
    ELSIF TG_TABLE_NAME = 'memberships' THEN
        PERFORM pg_notify('stackgate_sessions', 'u:' || OLD.user_id);
    ELSE
        PERFORM pg_notify('stackgate_sessions', 'u:' || OLD.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_notify_change AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION stackgate_user_changed();

CREATE TRIGGER memberships_notify_change AFTER INSERT OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION stackgate_user_changed();
