//! The audit log: written inside the transaction of each change, read back with filters.

use crate::{
    Store, StoreError,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::{AuditEntry, AuditRecord, Uuid};

/// Writes `$entry` at time `$at` on `$conn` (a transaction), failing the transaction if it fails.
macro_rules! write_audit {
    ($conn:expr, $entry:expr, $at:expr) => {{
        let entry: &stackgate_identity::AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, actor, action, target_type, target_id, target, detail, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(stackgate_identity::Uuid::now_v7().to_string())
        .bind($at)
        .bind(entry.actor.user_id.map(|id| id.to_string()))
        .bind(&entry.actor.name)
        .bind(entry.action)
        .bind(entry.target.kind())
        .bind(entry.target.id().map(|id| id.to_string()))
        .bind(entry.target.label())
        .bind($crate::audit::detail_text(entry))
        .bind(&entry.actor.source_ip)
        .execute($conn)
        .await?;
    }};
}
pub(crate) use write_audit;

pub(crate) fn detail_text(entry: &AuditEntry) -> Option<String> {
    (!entry.detail.is_null()).then(|| entry.detail.to_string())
}

/// Which audit records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Records older than this one (the previous page's last id).
    pub before: Option<Uuid>,
    /// Actor name, exact.
    pub actor: Option<String>,
    /// Action, exact (`user.create`) or a prefix ending in `.` (`user.`).
    pub action: Option<String>,
    /// Target id or name, exact.
    pub target: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub limit: u32,
}

impl Store {
    /// Records one entry on its own; for events that change nothing else (a refused login).
    pub async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            write_audit!(&mut *tx, entry, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let action_prefix = filter
            .action
            .as_deref()
            .filter(|a| a.ends_with('.'))
            .map(|a| format!("{}%", crate::users::escape_like(a)));
        let action_exact = filter.action.as_deref().filter(|a| !a.ends_with('.'));
        let rows: Vec<rows::AuditRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, actor_id, actor, action, target_type, target_id, target, detail, source_ip \
                 FROM audit_log \
                 WHERE ($1 IS NULL OR id < $1) \
                   AND ($2 IS NULL OR actor = $2) \
                   AND ($3 IS NULL OR action = $3) \
                   AND ($4 IS NULL OR action LIKE $4 ESCAPE '\\') \
                   AND ($5 IS NULL OR target_id = $5 OR target = $5) \
                   AND ($6 IS NULL OR at >= $6) \
                   AND ($7 IS NULL OR at < $7) \
                 ORDER BY id DESC LIMIT $8",
            )
            .bind(filter.before.map(|id| id.to_string()))
            .bind(&filter.actor)
            .bind(action_exact)
            .bind(&action_prefix)
            .bind(&filter.target)
            .bind(filter.since)
            .bind(filter.until)
            .bind(i64::from(filter.limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AuditRecord::try_from).collect()
    }
}
