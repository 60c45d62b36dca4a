//! Every value sealed under the master key (signing keys' private halves, TOTP secrets), listed
//! and rewritten together when the master key changes. The store never opens them: the caller
//! reseals and hands back ciphertext.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
};
use stackgate_identity::AuditEntry;

/// Where a sealed value lives, which is also what its ciphertext is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedOwner {
    /// `signing_keys.kid`
    SigningKey(String),
    /// `totp_credentials.user_id`
    Totp(String),
}

#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub owner: SealedOwner,
    /// base64
    pub sealed: String,
    pub master_key_id: String,
}

/// A value sealed again under a new key, replacing `old` only if `old` is still what is stored.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub old: SealedSecret,
    pub sealed: String,
}

/// owner, sealed value, master key id
type SealedRow = (String, String, String);

impl Store {
    /// Every sealed value whose key is not `master_key_id`.
    pub async fn sealed_secrets_not_under(
        &self,
        master_key_id: &str,
    ) -> Result<Vec<SealedSecret>, StoreError> {
        let (keys, totps): (Vec<SealedRow>, Vec<SealedRow>) = on_pool!(self, |pool| {
            (
                sqlx::query_as(
                    "SELECT kid, private_key, master_key_id FROM signing_keys \
                         WHERE master_key_id <> $1 ORDER BY kid",
                )
                .bind(master_key_id)
                .fetch_all(pool)
                .await?,
                sqlx::query_as(
                    "SELECT user_id, secret, master_key_id FROM totp_credentials \
                         WHERE master_key_id <> $1 ORDER BY user_id",
                )
                .bind(master_key_id)
                .fetch_all(pool)
                .await?,
            )
        });
        let keys = keys.into_iter().map(|(kid, sealed, id)| SealedSecret {
            owner: SealedOwner::SigningKey(kid),
            sealed,
            master_key_id: id,
        });
        let totps = totps.into_iter().map(|(user, sealed, id)| SealedSecret {
            owner: SealedOwner::Totp(user),
            sealed,
            master_key_id: id,
        });
        Ok(keys.chain(totps).collect())
    }

    /// Writes every resealed value under `master_key_id` in one transaction, with `audit`. A row
    /// changed since it was read (a TOTP secret re-enrolled meanwhile) is left as it is; the
    /// next reseal takes it. Returns how many rows were replaced.
    pub async fn reseal(
        &self,
        resealed: &[Resealed],
        master_key_id: &str,
        audit: &AuditEntry,
    ) -> Result<u64, StoreError> {
        let now = self.now();
        let mut replaced = 0;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for value in resealed {
                let (sql, owner) = match &value.old.owner {
                    SealedOwner::SigningKey(kid) => (
                        "UPDATE signing_keys SET private_key = $1, master_key_id = $2 \
                         WHERE kid = $3 AND private_key = $4 AND master_key_id = $5",
                        kid,
                    ),
                    SealedOwner::Totp(user) => (
                        "UPDATE totp_credentials SET secret = $1, master_key_id = $2 \
                         WHERE user_id = $3 AND secret = $4 AND master_key_id = $5",
                        user,
                    ),
                };
                replaced += sqlx::query(sql)
                    .bind(&value.sealed)
                    .bind(master_key_id)
                    .bind(owner)
                    .bind(&value.old.sealed)
                    .bind(&value.old.master_key_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            let audit = audit.clone().with_detail(serde_json::json!({
                "master_key_id": master_key_id,
                "resealed": replaced,
            }));
            write_audit!(&mut *tx, &audit, now);
            tx.commit().await?;
        });
        Ok(replaced)
    }
}
