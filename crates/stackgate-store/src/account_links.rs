//! One-time links an admin hands out: invitations and password resets; and an admin's reset of
//! someone's second factors.
//!
//! A link is spent by a `DELETE ... RETURNING` in the transaction that sets the password, so two
//! requests racing on the same link cannot both succeed, and a failed request spends nothing.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
};
use stackgate_identity::{AuditEntry, OffsetDateTime, PasswordHash, User, Uuid};

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A new person sets their first password, then their second factors.
    Invite,
    /// Someone who lost their password sets a new one; their second factors stay required.
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invite" => Some(LinkPurpose::Invite),
            "reset" => Some(LinkPurpose::Reset),
            _ => None,
        }
    }
}

/// How many second factors an admin's reset removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorsRemoved {
    pub totp: u64,
    pub webauthn: u64,
    pub recovery_codes: u64,
}

const LINK_SPENT: &str = "this link is invalid, expired or already used";

impl Store {
    /// Issues a link valid for `ttl` seconds, replacing the person's earlier link of the same
    /// purpose; returns when it expires.
    pub async fn issue_account_link(
        &self,
        user: Uuid,
        purpose: LinkPurpose,
        secret_hash: &str,
        ttl: i64,
        audit: &AuditEntry,
    ) -> Result<OffsetDateTime, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM account_links WHERE user_id = $1 AND purpose = $2")
                .bind(user.to_string())
                .bind(purpose.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO account_links (secret_hash, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(secret_hash)
            .bind(user.to_string())
            .bind(purpose.as_str())
            .bind(now)
            .bind(now + ttl)
            .execute(&mut *tx)
            .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        crate::rows::time(now + ttl, "account_links.expires_at")
    }

    /// The live link with this digest and the enabled person it is for; for showing its form.
    pub async fn account_link(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(LinkPurpose, User)>, StoreError> {
        let now = self.now();
        let row: Option<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT l.user_id, l.purpose FROM account_links l JOIN users u ON u.id = l.user_id \
                 WHERE l.secret_hash = $1 AND l.expires_at > $2 AND u.disabled = FALSE",
            )
            .bind(secret_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        let Some((user_id, purpose)) = row else {
            return Ok(None);
        };
        let purpose = LinkPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt("account_links.purpose"))?;
        let user = self
            .get_user(crate::rows::uuid(&user_id, "account_links.user_id")?)
            .await?;
        Ok(Some((purpose, user)))
    }

    /// Spends a link and sets the person's password, all or nothing. An expired, spent or
    /// forged link, or a disabled account, is refused and changes nothing.
    pub async fn redeem_account_link(
        &self,
        secret_hash: &str,
        password: &PasswordHash,
        audit: impl FnOnce(LinkPurpose, &User) -> AuditEntry,
    ) -> Result<(LinkPurpose, User), StoreError> {
        let Some((purpose, user)) = self.account_link(secret_hash).await? else {
            return Err(StoreError::Refused(LINK_SPENT.into()));
        };
        let entry = audit(purpose, &user);
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let spent = sqlx::query(
                "DELETE FROM account_links WHERE secret_hash = $1 AND user_id = $2 AND expires_at > $3",
            )
            .bind(secret_hash)
            .bind(user.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if spent.rows_affected() != 1 {
                return Err(StoreError::Refused(LINK_SPENT.into()));
            }
            let done = sqlx::query(
                "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 AND disabled = FALSE",
            )
            .bind(user.id.to_string())
            .bind(password.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Refused(LINK_SPENT.into()));
            }
            // A sign-in that proved the old password must not finish after the change.
            sqlx::query("DELETE FROM login_flows WHERE user_id = $1")
                .bind(user.id.to_string())
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, &entry, now);
            tx.commit().await?;
        });
        self.sessions.evict_user(user.id);
        Ok((purpose, user))
    }

    /// Removes every second factor of a person (an admin's reset after a lost phone or key):
    /// the authenticator app, passkeys and security keys, recovery codes, and any sign-in
    /// waiting for one of them. Their next sign-in leads them through enrolment if their policy
    /// requires a factor.
    pub async fn reset_second_factors(
        &self,
        user: Uuid,
        audit: &AuditEntry,
    ) -> Result<FactorsRemoved, StoreError> {
        let now = self.now();
        let removed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut removed = FactorsRemoved::default();
            for (table, count) in [
                ("totp_credentials", &mut removed.totp),
                ("webauthn_credentials", &mut removed.webauthn),
                ("recovery_codes", &mut removed.recovery_codes),
                ("login_flows", &mut 0),
            ] {
                let sql = format!("DELETE FROM {table} WHERE user_id = $1");
                *count = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            let mut entry = audit.clone();
            entry.detail = serde_json::json!({
                "totp": removed.totp,
                "webauthn": removed.webauthn,
                "recovery_codes": removed.recovery_codes,
            });
            write_audit!(&mut *tx, &entry, now);
            tx.commit().await?;
            removed
        });
        self.sessions.evict_user(user);
        Ok(removed)
    }
}
