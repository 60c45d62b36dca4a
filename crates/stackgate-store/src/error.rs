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
    /// True when the database cannot serve right now (unreachable, restarting, out of space),
    /// as opposed to a query being refused: the request may succeed later, so it gets a 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| is_transient_code(&code))
            }
            _ => false,
        }
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes that mean "not now" rather than "never".
fn is_transient_code(code: &str) -> bool {
    if code.len() == 5 {
        // A SQLSTATE (SQLite's codes have at most four digits): class 08 (connection
        // exception), 53 (out of disk, memory or connections), 57P (the server is shutting
        // down, crashed or starting up).
        return code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
    }
    // SQLite: extended result codes, whose low byte is the primary code: BUSY (5), LOCKED (6),
    // NOMEM (7), IOERR (10), FULL (13), CANTOPEN (14).
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 7 | 10 | 13 | 14))
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Executor};

    #[test]
    fn transient_codes() {
        for code in [
            "08006", "57P01", "57P03", "53100", "53300", "13", "5", "778", "3850",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        // Unique and foreign-key violations, syntax errors, SQLite CONSTRAINT (19, 1555, 2067).
        for code in ["23505", "23503", "42601", "19", "1555", "2067", "1", ""] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    /// A real full database: SQLite's own error, not one made up for the test.
    #[tokio::test]
    async fn a_full_sqlite_database_is_unavailable_not_broken() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        conn.execute("CREATE TABLE t (v TEXT)").await.unwrap();
        conn.execute("PRAGMA max_page_count = 3").await.unwrap();
        let mut failure = None;
        for _ in 0..100 {
            if let Err(err) = sqlx::query("INSERT INTO t VALUES (hex(randomblob(512)))")
                .execute(&mut conn)
                .await
            {
                failure = Some(err);
                break;
            }
        }
        let err = StoreError::Database(failure.expect("the database fills up"));
        assert!(err.is_unavailable(), "{err}");
    }

    /// PostgreSQL ending a connection under us (as it does when it shuts down or restarts).
    #[tokio::test]
    async fn a_terminated_postgres_connection_is_unavailable() {
        let Some(db) = crate::testing::TestDatabase::create(crate::Backend::Postgres)
            .await
            .unwrap()
        else {
            return;
        };
        let mut victim = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut victim)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        let err = sqlx::query("SELECT 1")
            .execute(&mut victim)
            .await
            .unwrap_err();
        assert!(StoreError::Database(err).is_unavailable());
    }
}
