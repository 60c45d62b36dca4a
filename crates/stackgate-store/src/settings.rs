//! Settings admins change at runtime, each overriding the config file's value of its key.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
};
use stackgate_identity::AuditEntry;
use std::collections::BTreeMap;

impl Store {
    /// Every stored override, by key.
    pub async fn settings(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT key, value FROM settings")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Sets (`Some`) or clears (`None`, back to the config file's value) each key, all at once
    /// with one audit entry.
    pub async fn save_settings(
        &self,
        changes: &[(&str, Option<String>)],
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for (key, value) in changes {
                match value {
                    Some(value) => {
                        sqlx::query(
                            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        )
                        .bind(*key)
                        .bind(value)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM settings WHERE key = $1")
                            .bind(*key)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }
}
