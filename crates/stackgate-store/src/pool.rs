//! The two pools, and the macro that runs one piece of code on whichever is open.

use crate::StoreError;
use sqlx::{
    ConnectOptions, PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use stackgate_identity::Clock;
use std::{str::FromStr, sync::Arc, time::Duration};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL's scheme, with the one-line message the config check shows.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "" => Err(StoreError::Url(
                "missing scheme; use sqlite:// or postgres://".into(),
            )),
            other => Err(StoreError::Url(format!(
                "unsupported scheme {other:?}; use sqlite:// or postgres://"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    /// How long a query may wait for a free connection before it fails (and the edge answers 503).
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open backend's native pool. The body is compiled once
/// per backend, so each runs with its own driver and types; the SQL text is shared.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &*$store.pool {
            $crate::pool::Pool::Sqlite($pool) => $body,
            $crate::pool::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool!`], for code that writes. On SQLite, writers from this process queue on a
/// mutex before asking the database for its single write lock: SQLite's own busy handler
/// sleeps and retries, which under load turns into long, unfair waits.
macro_rules! on_pool_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &*$store.pool {
            $crate::pool::Pool::Sqlite($pool) => {
                let _writer = $store.sqlite_writer.lock().await;
                $body
            }
            $crate::pool::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool_write;

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
/// SQLITE_BUSY when another writer got in between, where waiting is what we want.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// The store: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Arc<Pool>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Serialises this process's SQLite writers (unused on PostgreSQL).
    pub(crate) sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    pub(crate) sessions: Arc<crate::session_cache::SessionCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Connections in use and idle, for the metrics endpoint.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Whether a SQLite connection may go back to the pool. When the disk fills up, SQLite can roll
/// a transaction back by itself as its COMMIT fails; sqlx then still counts it as open, the
/// rollback on drop fails too, and every later `BEGIN` on that connection would be refused:
/// writes would fail long after the disk has room again. Such a connection is closed instead.
async fn sqlite_connection_is_clean(
    conn: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // The ping queues behind a pending rollback, so the count below is the settled one.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection left inside a failed transaction");
        return Ok(false);
    }
    Ok(true)
}

impl Store {
    /// Opens the pool. A SQLite file (and its folder's file) is created if missing; foreign keys
    /// are enforced and the journal is WAL so readers never wait for the writer.
    pub async fn connect(
        options: &StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let pool = match Backend::from_url(&options.url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(&options.url)
                    .map_err(|e| StoreError::Url(e.to_string()))?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .after_release(|conn, _| Box::pin(sqlite_connection_is_clean(conn)))
                    .connect_with(connect)
                    .await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(&options.url)
                    .map_err(|e| StoreError::Url(e.to_string()))?
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                Pool::Postgres(pool)
            }
        };
        Ok(Self {
            pool: Arc::new(pool),
            clock,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            sessions: Arc::new(crate::session_cache::SessionCache::new()),
        })
    }

    pub fn backend(&self) -> Backend {
        match *self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of the open backend; already-applied ones are skipped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &*self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn pool_stats(&self) -> PoolStats {
        on_pool!(self, |pool| PoolStats {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
    }

    /// Waits for checked-out connections to return, then closes them (and checkpoints SQLite's WAL).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// The store's notion of now, for callers computing expiries to hand back to it.
    pub fn now_unix(&self) -> i64 {
        self.clock.unix()
    }
}
