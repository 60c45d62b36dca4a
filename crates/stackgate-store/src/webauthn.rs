//! WebAuthn credentials and ceremonies. The store keeps webauthn-rs's records as opaque JSON;
//! what they mean is the web crate's business. Ceremonies are taken once (`DELETE ...
//! RETURNING`), so an answer cannot be replayed against the same challenge.

use crate::{
    Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::{AuditEntry, OffsetDateTime, Uuid};

/// What a credential is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Discoverable and user-verified: signs in on its own.
    Passkey,
    /// A second factor after the password.
    SecurityKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Passkey => "passkey",
            CredentialKind::SecurityKey => "security_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passkey" => Some(CredentialKind::Passkey),
            "security_key" => Some(CredentialKind::SecurityKey),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: CredentialKind,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub backup_eligible: bool,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    user_id: String,
    kind: String,
    credential_id: String,
    name: String,
    credential: String,
    backup_eligible: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<Row> for StoredCredential {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: rows::uuid(&row.id, "webauthn_credentials.id")?,
            user_id: rows::uuid(&row.user_id, "webauthn_credentials.user_id")?,
            kind: CredentialKind::parse(&row.kind)
                .ok_or(StoreError::Corrupt("webauthn_credentials.kind"))?,
            credential_id: row.credential_id,
            name: row.name,
            credential: row.credential,
            backup_eligible: row.backup_eligible,
            created_at: rows::time(row.created_at, "webauthn_credentials.created_at")?,
            last_used_at: row
                .last_used_at
                .map(|t| rows::time(t, "webauthn_credentials.last_used_at"))
                .transpose()?,
        })
    }
}

const COLUMNS: &str =
    "id, user_id, kind, credential_id, name, credential, backup_eligible, created_at, last_used_at";

/// A credential about to be registered.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub user_id: Uuid,
    pub kind: CredentialKind,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub backup_eligible: bool,
}

impl Store {
    pub async fn add_credential(
        &self,
        new: &NewCredential<'_>,
        audit: &AuditEntry,
    ) -> Result<Uuid, StoreError> {
        let now = self.now();
        let id = Uuid::new_v4();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO webauthn_credentials (id, user_id, kind, credential_id, name, credential, backup_eligible, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.to_string())
            .bind(new.user_id.to_string())
            .bind(new.kind.as_str())
            .bind(new.credential_id)
            .bind(new.name)
            .bind(new.credential)
            .bind(new.backup_eligible)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn credentials_of(&self, user: Uuid) -> Result<Vec<StoredCredential>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(user.to_string())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn credential_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE credential_id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(credential_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(TryInto::try_into).transpose()
    }

    /// Records a use, with the updated record (counter, backup state) when it changed.
    pub async fn credential_used(&self, id: Uuid, updated: Option<&str>) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE webauthn_credentials SET last_used_at = $2, credential = COALESCE($3, credential) WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(now)
            .bind(updated)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn rename_credential(
        &self,
        user: Uuid,
        id: Uuid,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE webauthn_credentials SET name = $3 WHERE id = $1 AND user_id = $2",
            )
            .bind(id.to_string())
            .bind(user.to_string())
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("credential"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn remove_credential(
        &self,
        user: Uuid,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done =
                sqlx::query("DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2")
                    .bind(id.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("credential"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Keeps a ceremony's state until its answer arrives.
    pub async fn start_ceremony(
        &self,
        id_hash: &str,
        user: Option<Uuid>,
        purpose: &str,
        state: &str,
        lifetime: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO webauthn_ceremonies (id_hash, user_id, purpose, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id_hash)
            .bind(user.map(|u| u.to_string()))
            .bind(purpose)
            .bind(state)
            .bind(now + lifetime)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes a live ceremony of `purpose` (once); returns its user and state.
    pub async fn take_ceremony(
        &self,
        id_hash: &str,
        purpose: &str,
    ) -> Result<Option<(Option<Uuid>, String)>, StoreError> {
        let now = self.now();
        let row: Option<(Option<String>, String)> = on_pool_write!(self, |pool| {
            sqlx::query_as(
                "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND purpose = $2 AND expires_at > $3 \
                 RETURNING user_id, state",
            )
            .bind(id_hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(user, state)| {
            Ok((
                user.map(|u| rows::uuid(&u, "webauthn_ceremonies.user_id"))
                    .transpose()?,
                state,
            ))
        })
        .transpose()
    }
}
