//! Signing keys, sealed by the caller before they get here: the store never sees a private key
//! in clear.

use crate::{
    Store, StoreError,
    pool::{BeginWrite, on_pool_write},
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// Sealed PKCS#8, base64.
    pub private_key: String,
    pub public_jwk: String,
    pub master_key_id: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

impl Store {
    /// Adds a key and retires the current key of the same algorithm, which stays published
    /// until `publish_old_until`. One transaction, so there is always exactly one current key.
    pub async fn add_signing_key(
        &self,
        key: &StoredKey,
        publish_old_until: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $2, publish_until = $3 WHERE alg = $1 AND retired_at IS NULL")
                .bind(&key.alg)
                .bind(now)
                .bind(publish_old_until)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, master_key_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_key)
            .bind(&key.public_jwk)
            .bind(&key.master_key_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Keys still published (current, or retired but not yet past `publish_until`); expired
    /// ones are deleted on the way.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let now = self.now();
        Ok(on_pool_write!(self, |pool| {
            sqlx::query(
                "DELETE FROM signing_keys WHERE publish_until IS NOT NULL AND publish_until <= $1",
            )
            .bind(now)
            .execute(pool)
            .await?;
            sqlx::query_as(
                "SELECT kid, alg, private_key, public_jwk, master_key_id, created_at, retired_at, publish_until \
                 FROM signing_keys ORDER BY created_at DESC, kid",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
