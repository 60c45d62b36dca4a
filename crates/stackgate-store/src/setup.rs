//! First-run setup: a one-time link that lets the first person create the admin account.

use crate::{
    Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
};
use stackgate_identity::{ADMINS_GROUP_ID, AuditEntry, NewUser, PasswordHash, User};

impl Store {
    /// Whether any enabled admin exists.
    pub async fn admin_exists(&self) -> Result<bool, StoreError> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.group_id = $1 AND u.disabled = FALSE",
            )
            .bind(ADMINS_GROUP_ID.to_string())
            .fetch_one(pool)
            .await?
        });
        Ok(count > 0)
    }

    /// Replaces any earlier setup link with a new one valid for `ttl` seconds.
    pub async fn issue_setup_token(&self, secret_hash: &str, ttl: i64) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM setup_tokens")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO setup_tokens (secret_hash, created_at, expires_at) VALUES ($1, $2, $3)")
                .bind(secret_hash)
                .bind(now)
                .bind(now + ttl)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether a setup link is live (unused, unexpired); for showing the form.
    pub async fn setup_token_live(&self, secret_hash: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM setup_tokens WHERE secret_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(count > 0)
    }

    /// Spends the setup link and creates the first admin, all or nothing. A second use, an
    /// expired link, or an admin that already exists is refused and changes nothing.
    pub async fn complete_setup(
        &self,
        secret_hash: &str,
        admin: &NewUser,
        password: &PasswordHash,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let spent = sqlx::query(
                "UPDATE setup_tokens SET used_at = $2 WHERE secret_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if spent.rows_affected() != 1 {
                return Err(StoreError::Refused(
                    "this setup link is invalid, expired or already used".into(),
                ));
            }
            let admins: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE group_id = $1")
                    .bind(ADMINS_GROUP_ID.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            if admins > 0 {
                return Err(StoreError::Refused(
                    "an admin account already exists".into(),
                ));
            }
            sqlx::query(
                "INSERT INTO users (id, username, email, display_name, password_hash, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6)",
            )
            .bind(admin.id.to_string())
            .bind(&admin.username)
            .bind(&admin.email)
            .bind(&admin.display_name)
            .bind(password.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            sqlx::query(
                "INSERT INTO memberships (group_id, user_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(ADMINS_GROUP_ID.to_string())
            .bind(admin.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.get_user(admin.id).await
    }
}
