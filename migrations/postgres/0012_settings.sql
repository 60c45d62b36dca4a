-- Settings admins change in the console (organisation name, logo, colour, session lifetimes,
-- the global sign-in policy). Each row overrides the config file's value of the same key;
-- without a row the config file's value applies. The logo is stored base64-encoded.
CREATE TABLE settings (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);
