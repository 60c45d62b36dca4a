//! Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database created on
//! the server named by `STACKGATE_TEST_POSTGRES_URL` and dropped afterwards.

use crate::{Backend, Store, StoreError, StoreOptions};
use sqlx::{Connection, PgConnection};
use stackgate_identity::{Clock, SystemClock, Uuid};
use std::sync::Arc;

/// The environment variable naming a PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "STACKGATE_TEST_POSTGRES_URL";
/// When set (the test command sets it), a missing PostgreSQL fails the tests instead of
/// skipping them, so a green run always means both backends were exercised.
pub const REQUIRE_POSTGRES_VAR: &str = "STACKGATE_TEST_REQUIRE_POSTGRES";

/// A database that lives as long as this value.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    drop: Option<(String, String)>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("backend", &self.backend)
            .finish()
    }
}

impl TestDatabase {
    /// A new, empty database; `None` when PostgreSQL is asked for but not configured (and not
    /// required), in which case the caller skips and says so.
    pub async fn create(backend: Backend) -> Result<Option<Self>, StoreError> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| StoreError::Url(e.to_string()))?;
                let url = format!("sqlite://{}/test.db", dir.path().display());
                Ok(Some(Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    drop: None,
                }))
            }
            Backend::Postgres => {
                let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
                    if std::env::var_os(REQUIRE_POSTGRES_VAR).is_some() {
                        return Err(StoreError::Url(format!(
                            "{REQUIRE_POSTGRES_VAR} is set but {POSTGRES_URL_VAR} is not"
                        )));
                    }
                    eprintln!("skipped: {POSTGRES_URL_VAR} is not set, PostgreSQL not tested");
                    return Ok(None);
                };
                let name = format!("stackgate_test_{}", Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&server).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let mut url =
                    url::Url::parse(&server).map_err(|e| StoreError::Url(e.to_string()))?;
                url.set_path(&name);
                Ok(Some(Self {
                    url: url.to_string(),
                    backend,
                    _dir: None,
                    drop: Some((server, name)),
                }))
            }
        }
    }

    /// Opens the database, migrated, with the given clock.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        let store = Store::connect(&StoreOptions::new(&self.url), clock).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn store_now(&self) -> Result<Store, StoreError> {
        self.store(Arc::new(SystemClock)).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = self.drop.take() {
            // Drop runs outside any runtime we may block on: a short-lived one of our own does it.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut admin) = PgConnection::connect(&server).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}
