-- Apps installed through Stackgate: what should run, so that a restart (or another replica)
-- can reconcile it with what does. The manifest is kept as its YAML text, exactly as installed.
CREATE TABLE installed_apps (
    id           TEXT    NOT NULL PRIMARY KEY,
    version      TEXT    NOT NULL,
    manifest     TEXT    NOT NULL,
    -- `installing` while the steps run (a leftover after a crash is undone at start),
    -- then `installed`.
    status       TEXT    NOT NULL,
    -- The external address people use, and the internal one Stackgate and the edge reach.
    base_url     TEXT    NOT NULL,
    internal_url TEXT    NOT NULL,
    -- Groups given the user role and the admin role, space-separated names.
    user_groups  TEXT    NOT NULL,
    admin_groups TEXT    NOT NULL,
    -- `none`, `patch` or `minor`.
    update_policy TEXT   NOT NULL,
    installed_at BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
