//! The edge proxy's state: runtime routes, the admins' access policy, and the sessions the proxy
//! keeps on each app's own host. A proxy session is a separate secret tied to an SSO session: it
//! ends with it, and it is looked up through the same in-memory cache.

use crate::{
    Session, Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
    sessions::SessionKey,
};
use stackgate_identity::{AuditEntry, OffsetDateTime, Uuid};

/// The role an app behind the edge is told, and in which header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteRoles {
    pub header: String,
    /// The values the app reads.
    pub user: String,
    pub admin: String,
    /// Groups given the admin value (Stackgate's admins always are).
    pub admin_groups: Vec<String>,
}

/// A route added at runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoute {
    pub id: Uuid,
    pub host: String,
    pub path_prefix: String,
    pub upstream: String,
    pub app: String,
    pub groups: Vec<String>,
    pub public_paths: Vec<String>,
    pub roles: Option<RouteRoles>,
    pub created_at: OffsetDateTime,
}

/// A route to add.
#[derive(Debug, Clone)]
pub struct NewRoute {
    pub host: String,
    pub path_prefix: String,
    pub upstream: String,
    pub app: String,
    pub groups: Vec<String>,
    pub public_paths: Vec<String>,
    pub roles: Option<RouteRoles>,
}

#[derive(sqlx::FromRow)]
struct RouteRow {
    id: String,
    host: String,
    path_prefix: String,
    upstream: String,
    app: String,
    groups: String,
    public_paths: String,
    roles: Option<String>,
    created_at: i64,
}

impl TryFrom<RouteRow> for StoredRoute {
    type Error = StoreError;
    fn try_from(row: RouteRow) -> Result<Self, StoreError> {
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        Ok(StoredRoute {
            id: rows::uuid(&row.id, "proxy_routes.id")?,
            groups: words(&row.groups),
            public_paths: words(&row.public_paths),
            roles: row
                .roles
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|_| StoreError::Corrupt("proxy_routes.roles"))?,
            host: row.host,
            path_prefix: row.path_prefix,
            upstream: row.upstream,
            app: row.app,
            created_at: rows::time(row.created_at, "proxy_routes.created_at")?,
        })
    }
}

/// The one row of `access_policies`.
const POLICY_ROW: i64 = 1;

impl Store {
    pub async fn proxy_routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
        let rows: Vec<RouteRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, host, path_prefix, upstream, app, groups, public_paths, roles, created_at \
                 FROM proxy_routes ORDER BY host, path_prefix",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(StoredRoute::try_from).collect()
    }

    pub async fn add_proxy_route(
        &self,
        route: &NewRoute,
        audit: &AuditEntry,
    ) -> Result<StoredRoute, StoreError> {
        let now = self.now();
        let id = Uuid::now_v7();
        let roles = route
            .roles
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| StoreError::Corrupt("proxy_routes.roles"))?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO proxy_routes (id, host, path_prefix, upstream, app, groups, public_paths, roles, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id.to_string())
            .bind(&route.host)
            .bind(&route.path_prefix)
            .bind(&route.upstream)
            .bind(&route.app)
            .bind(route.groups.join(" "))
            .bind(route.public_paths.join(" "))
            .bind(roles)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.proxy_changed();
        Ok(StoredRoute {
            id,
            host: route.host.clone(),
            path_prefix: route.path_prefix.clone(),
            upstream: route.upstream.clone(),
            app: route.app.clone(),
            groups: route.groups.clone(),
            public_paths: route.public_paths.clone(),
            roles: route.roles.clone(),
            created_at: rows::time(now, "proxy_routes.created_at")?,
        })
    }

    /// Removes a runtime route; returns whether it existed.
    pub async fn remove_proxy_route(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let removed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM proxy_routes WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if removed {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            removed
        });
        self.sessions.proxy_changed();
        Ok(removed)
    }

    /// Sets what an app's routes let through unsigned and the role header they send.
    pub async fn set_app_route(
        &self,
        app: &str,
        public_paths: &[String],
        roles: Option<&RouteRoles>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let roles = roles
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| StoreError::Corrupt("proxy_routes.roles"))?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE proxy_routes SET public_paths = $1, roles = $2 WHERE app = $3")
                .bind(public_paths.join(" "))
                .bind(&roles)
                .bind(app)
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.proxy_changed();
        Ok(())
    }

    /// The admins' Cedar policy text (empty when they have written none).
    pub async fn access_policy(&self) -> Result<String, StoreError> {
        let row: Option<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT text FROM access_policies WHERE id = $1")
                .bind(POLICY_ROW)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(text,)| text).unwrap_or_default())
    }

    /// Replaces the admins' policy text. The caller has validated it.
    pub async fn set_access_policy(
        &self,
        text: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO access_policies (id, text, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
            )
            .bind(POLICY_ROW)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.proxy_changed();
        Ok(())
    }

    /// Ticks whenever routes or policies may have changed, here or on another replica.
    pub fn proxy_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sessions.proxy_changes()
    }

    /// Announces sessions that may have ended (signed out here or on another replica, user
    /// disabled, groups changed), as this process's session cache learns of them. Anything that
    /// keeps a session for longer than one request re-checks it on each announcement that
    /// [`SessionChange::concerns`] it; a receiver that lags behind is told so and should re-check.
    pub fn session_changes(
        &self,
    ) -> tokio::sync::broadcast::Receiver<crate::session_cache::SessionChange> {
        self.sessions.changes()
    }

    /// Keeps a one-time code that lets `host` open a proxy session under SSO session `session`.
    pub async fn issue_proxy_code(
        &self,
        code_hash: &str,
        session: Uuid,
        host: &str,
        state_hash: &str,
        lifetime: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM proxy_codes WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO proxy_codes (code_hash, session_id, host, state_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(code_hash)
            .bind(session.to_string())
            .bind(host)
            .bind(state_hash)
            .bind(now + lifetime)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes a live code for `host` and the browser holding `state_hash` (once) and opens a proxy
    /// session with `secret_hash` in its place, valid on `scope` (the host itself, or the shared
    /// scope of a parent-domain cookie), replacing that session's earlier one there.
    /// Returns false when the code is unknown, spent, expired, or meant for another host or
    /// browser.
    pub async fn redeem_proxy_code(
        &self,
        code_hash: &str,
        host: &str,
        scope: &str,
        state_hash: &str,
        secret_hash: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        // Junk codes cost a read, not a write transaction.
        let known: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT expires_at FROM proxy_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(pool)
                .await?
        });
        if known.is_none_or(|(expires_at,)| expires_at <= now) {
            return Ok(false);
        }
        let opened = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let session: Option<(String,)> = sqlx::query_as(
                "DELETE FROM proxy_codes WHERE code_hash = $1 AND host = $2 AND state_hash = $3 AND expires_at > $4 \
                 RETURNING session_id",
            )
            .bind(code_hash)
            .bind(host)
            .bind(state_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((session,)) = &session {
                sqlx::query("DELETE FROM proxy_sessions WHERE session_id = $1 AND host = $2")
                    .bind(session)
                    .bind(scope)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO proxy_sessions (secret_hash, session_id, host, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(secret_hash)
                .bind(session)
                .bind(scope)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            session
        });
        // The replaced session on this host must not live on in any cache entry.
        if let Some((session,)) = &opened {
            self.evict_session_id(session);
        }
        Ok(opened.is_some())
    }

    /// The live SSO session behind a proxy cookie valid on `host` (a host, or a parent-domain
    /// cookie's shared scope), from the cache when it can vouch.
    pub async fn proxy_session(
        &self,
        secret_hash: &str,
        host: &str,
        idle_timeout: i64,
    ) -> Result<Option<std::sync::Arc<Session>>, StoreError> {
        self.live_session(SessionKey::Proxy { secret_hash, host }, idle_timeout)
            .await
    }
}
