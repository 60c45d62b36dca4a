use thiserror::Error;

/// What can go wrong in the store. Constraint violations arrive already mapped to the domain's
/// words (`Conflict`, `NotFound`), so the edges never parse database messages.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique value is already taken; `field` names it as the API spells it.
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: String,
    },

    /// The thing looked up does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),

    /// The change would break a rule the store guards (e.g. removing the last admin).
    #[error("{0}")]
    Refused(String),

    /// The database URL cannot be used.
    #[error("database_url: {0}")]
    Url(String),

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A stored value does not parse (an id that is not a UUID, a timestamp out of range).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
}

impl StoreError {
    /// True when the database could not be reached, as opposed to a query being refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        )
    }
}

/// Unique constraints and how to name them to a person. SQLite reports the columns
/// (`users.username`), PostgreSQL the constraint name; the table knows both.
const UNIQUE: &[(&str, &str, &str, &str)] = &[
    (
        "proxy_routes_host_prefix_key",
        "proxy_routes.host, proxy_routes.path_prefix",
        "host",
        "a route for this host and path prefix exists already",
    ),
    (
        "users_username_key",
        "users.username",
        "username",
        "a user with this username already exists",
    ),
    (
        "users_email_key",
        "users.email",
        "email",
        "a user with this email already exists",
    ),
    (
        "groups_name_key",
        "groups.name",
        "name",
        "a group with this name already exists",
    ),
    (
        "api_tokens_user_name_key",
        "api_tokens.user_id, api_tokens.name",
        "name",
        "this user already has a token with this name",
    ),
    (
        "webauthn_credentials_credential_id_key",
        "webauthn_credentials.credential_id",
        "credential",
        "this authenticator is already registered",
    ),
];

/// Maps a unique violation to a `Conflict`; anything else passes through.
pub(crate) fn map_unique(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let constraint = db.constraint().unwrap_or_default();
        let message = db.message();
        for (pg_name, sqlite_cols, field, text) in UNIQUE {
            if constraint == *pg_name || message.ends_with(sqlite_cols) {
                return StoreError::Conflict {
                    field,
                    message: (*text).to_owned(),
                };
            }
        }
    }
    StoreError::Database(err)
}
