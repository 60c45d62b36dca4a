//! Installed apps: the desired state the app registry reconciles with what runs.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::{AuditEntry, OffsetDateTime};

/// Where an install stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// The install's steps are running (or were, when a process stopped in the middle).
    Installing,
    Installed,
}

impl AppStatus {
    fn as_str(self) -> &'static str {
        match self {
            AppStatus::Installing => "installing",
            AppStatus::Installed => "installed",
        }
    }
}

/// An installed app as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledApp {
    pub id: String,
    pub version: String,
    /// The manifest's YAML, exactly as installed.
    pub manifest: String,
    pub status: AppStatus,
    pub base_url: String,
    pub internal_url: String,
    pub user_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    pub update_policy: String,
    pub installed_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    version: String,
    manifest: String,
    status: String,
    base_url: String,
    internal_url: String,
    user_groups: String,
    admin_groups: String,
    update_policy: String,
    installed_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, version, manifest, status, base_url, internal_url, user_groups, \
                       admin_groups, update_policy, installed_at, updated_at";

impl TryFrom<Row> for InstalledApp {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        let status = match row.status.as_str() {
            "installing" => AppStatus::Installing,
            "installed" => AppStatus::Installed,
            _ => return Err(StoreError::Corrupt("installed_apps.status")),
        };
        Ok(InstalledApp {
            user_groups: words(&row.user_groups),
            admin_groups: words(&row.admin_groups),
            installed_at: rows::time(row.installed_at, "installed_apps.installed_at")?,
            updated_at: rows::time(row.updated_at, "installed_apps.updated_at")?,
            id: row.id,
            version: row.version,
            manifest: row.manifest,
            status,
            base_url: row.base_url,
            internal_url: row.internal_url,
            update_policy: row.update_policy,
        })
    }
}

/// An app about to be installed.
#[derive(Debug, Clone)]
pub struct NewInstall {
    pub id: String,
    pub version: String,
    pub manifest: String,
    pub base_url: String,
    pub internal_url: String,
    pub user_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    pub update_policy: String,
}

impl Store {
    pub async fn installed_apps(&self) -> Result<Vec<InstalledApp>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(
                format!("SELECT {COLUMNS} FROM installed_apps ORDER BY id").as_str(),
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(InstalledApp::try_from).collect()
    }

    pub async fn installed_app(&self, id: &str) -> Result<Option<InstalledApp>, StoreError> {
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(
                format!("SELECT {COLUMNS} FROM installed_apps WHERE id = $1").as_str(),
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(InstalledApp::try_from).transpose()
    }

    /// Claims the app's id for an install; a second install of the same id is a conflict.
    pub async fn begin_app_install(
        &self,
        app: &NewInstall,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "INSERT INTO installed_apps (id, version, manifest, status, base_url, internal_url, \
                 user_groups, admin_groups, update_policy, installed_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&app.id)
            .bind(&app.version)
            .bind(&app.manifest)
            .bind(AppStatus::Installing.as_str())
            .bind(&app.base_url)
            .bind(&app.internal_url)
            .bind(app.user_groups.join(" "))
            .bind(app.admin_groups.join(" "))
            .bind(&app.update_policy)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict {
                    field: "id",
                    message: "this app is installed already".into(),
                });
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn finish_app_install(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE installed_apps SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(AppStatus::Installed.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets an app; returns whether it was there.
    pub async fn remove_installed_app(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let removed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM installed_apps WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
            removed
        });
        Ok(removed)
    }

    /// Records who reaches an app with which role, and gives its edge routes `route_groups` in
    /// the same transaction (the edge follows through the change notification).
    pub async fn set_app_access(
        &self,
        id: &str,
        user_groups: &[String],
        admin_groups: &[String],
        route_groups: &[String],
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let changed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE installed_apps SET user_groups = $1, admin_groups = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(user_groups.join(" "))
            .bind(admin_groups.join(" "))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if changed {
                sqlx::query("UPDATE proxy_routes SET groups = $1 WHERE app = $2")
                    .bind(route_groups.join(" "))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                // A role header follows the admin groups too.
                let with_roles: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, roles FROM proxy_routes WHERE app = $1 AND roles IS NOT NULL",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                for (route, roles) in with_roles {
                    let mut roles: crate::RouteRoles = serde_json::from_str(&roles)
                        .map_err(|_| StoreError::Corrupt("proxy_routes.roles"))?;
                    roles.admin_groups = admin_groups.to_vec();
                    let roles = serde_json::to_string(&roles)
                        .map_err(|_| StoreError::Corrupt("proxy_routes.roles"))?;
                    sqlx::query("UPDATE proxy_routes SET roles = $1 WHERE id = $2")
                        .bind(roles)
                        .bind(route)
                        .execute(&mut *tx)
                        .await?;
                }
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            changed
        });
        if changed {
            self.sessions.proxy_changed();
        }
        Ok(changed)
    }

    /// Records the version an app now runs, with its manifest.
    pub async fn set_app_version(
        &self,
        id: &str,
        version: &str,
        manifest: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let changed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE installed_apps SET version = $1, manifest = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(version)
            .bind(manifest)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if changed {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }
}
