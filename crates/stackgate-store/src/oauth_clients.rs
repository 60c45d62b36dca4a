//! OAuth clients: the validated registration as JSON, the secret as a digest.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
};
use stackgate_identity::AuditEntry;
use stackgate_oidc::Client;

/// A client with the digest of its secret (public clients have none).
#[derive(Debug, Clone)]
pub struct StoredClient {
    pub client: Client,
    pub secret_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    secret_hash: Option<String>,
    settings: String,
}

fn decode(row: Row) -> Result<StoredClient, StoreError> {
    Ok(StoredClient {
        client: serde_json::from_str(&row.settings)
            .map_err(|_| StoreError::Corrupt("oauth_clients.settings"))?,
        secret_hash: row.secret_hash,
    })
}

fn encode(client: &Client) -> Result<String, StoreError> {
    serde_json::to_string(client).map_err(|_| StoreError::Corrupt("oauth_clients.settings"))
}

impl Store {
    pub async fn create_client(
        &self,
        client: &Client,
        secret_hash: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let settings = encode(client)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "INSERT INTO oauth_clients (id, name, secret_hash, settings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&client.id)
            .bind(&client.name)
            .bind(secret_hash)
            .bind(&settings)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict {
                    field: "id",
                    message: "a client with this id already exists".into(),
                });
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replaces a client's settings (not its id or secret).
    pub async fn update_client(
        &self,
        client: &Client,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let settings = encode(client)?;
        let changed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE oauth_clients SET name = $1, settings = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(&client.name)
            .bind(&settings)
            .bind(now)
            .bind(&client.id)
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

    pub async fn get_client(&self, id: &str) -> Result<Option<StoredClient>, StoreError> {
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT secret_hash, settings FROM oauth_clients WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(decode).transpose()
    }

    pub async fn list_clients(&self) -> Result<Vec<StoredClient>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT secret_hash, settings FROM oauth_clients ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(decode).collect()
    }

    /// Records a client assertion's `jti` until it expires; `false` when it was seen before.
    pub async fn record_client_assertion(
        &self,
        client_id: &str,
        jti_hash: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let fresh = on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM client_assertions WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO client_assertions (jti_hash, client_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti_hash) DO NOTHING",
            )
            .bind(jti_hash)
            .bind(client_id)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        });
        Ok(fresh)
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE oauth_clients SET secret_hash = $2, updated_at = $3 WHERE id = $1 AND secret_hash IS NOT NULL")
                .bind(id)
                .bind(secret_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("confidential client"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes a client with its codes, grants, tokens and consents.
    pub async fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("client"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }
}
