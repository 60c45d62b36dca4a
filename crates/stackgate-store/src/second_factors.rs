//! TOTP credentials, recovery codes, and sign-ins waiting for their second factor.
//!
//! The one-time properties live in the database, not in a process: a TOTP step is accepted by
//! an `UPDATE ... WHERE last_step < $step` and a recovery code by an `UPDATE ... WHERE used_at IS
//! NULL`, so two replicas racing on the same code cannot both succeed.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::{AuditEntry, MfaPolicy, Uuid};

/// A user's TOTP secret, still sealed.
#[derive(Debug, Clone)]
pub struct StoredTotp {
    pub sealed: String,
    pub master_key_id: String,
    pub confirmed: bool,
}

/// Which second factors a user has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondFactors {
    pub totp: bool,
    pub recovery_codes_left: i64,
    pub security_keys: i64,
    pub passkeys: i64,
}

impl SecondFactors {
    /// Whether a password sign-in must be followed by a second step.
    pub fn any(&self) -> bool {
        self.totp || self.recovery_codes_left > 0 || self.security_keys > 0 || self.passkeys > 0
    }
}

/// A sign-in between its factors.
#[derive(Debug, Clone)]
pub struct LoginFlow {
    pub user_id: Uuid,
    pub amr: String,
    pub return_to: String,
    pub failures: i64,
    /// What the second step must prove.
    pub required: MfaPolicy,
    /// The session this flow steps up (an app asked for more than it has): the flow then adds a
    /// factor to that session instead of starting one, and is void without it.
    pub step_up_of: Option<Uuid>,
}

/// Everything a password sign-in decides on, read in one query.
#[derive(Debug, Clone)]
pub struct SignInCandidate {
    pub user: stackgate_identity::User,
    pub password_hash: Option<stackgate_identity::PasswordHash>,
    pub factors: SecondFactors,
    /// The strictest sign-in policy among the user's groups.
    pub group_policy: MfaPolicy,
}

impl Store {
    /// The user a sign-in names, with their password hash, second factors and group policy;
    /// `None` when no such user exists.
    pub async fn sign_in_candidate(
        &self,
        username: &str,
    ) -> Result<Option<SignInCandidate>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: crate::rows::UserRow,
            password_hash: Option<String>,
            totp: i64,
            recovery_left: i64,
            security_keys: i64,
            passkeys: i64,
            mfa_level: i64,
        }
        let sql = format!(
            "SELECT {}, password_hash, \
               (SELECT COUNT(*) FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS totp, \
               (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) AS recovery_left, \
               (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = users.id AND w.kind = 'security_key') AS security_keys, \
               (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = users.id AND w.kind = 'passkey') AS passkeys, \
               CAST((SELECT COALESCE(MAX(CASE g.mfa_policy WHEN 'phishing_resistant' THEN 2 WHEN 'required' THEN 1 ELSE 0 END), 0) \
                 FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = users.id) AS BIGINT) AS mfa_level \
             FROM users WHERE username = $1",
            crate::rows::USER_COLUMNS
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(username.trim().to_ascii_lowercase())
                .fetch_optional(pool)
                .await?
        });
        row.map(|row| {
            Ok(SignInCandidate {
                user: row.user.try_into()?,
                password_hash: row
                    .password_hash
                    .map(stackgate_identity::PasswordHash::from_stored),
                factors: SecondFactors {
                    totp: row.totp > 0,
                    recovery_codes_left: row.recovery_left,
                    security_keys: row.security_keys,
                    passkeys: row.passkeys,
                },
                group_policy: match row.mfa_level {
                    2 => MfaPolicy::PhishingResistant,
                    1 => MfaPolicy::Required,
                    _ => MfaPolicy::Optional,
                },
            })
        })
        .transpose()
    }

    pub async fn second_factors(&self, user: Uuid) -> Result<SecondFactors, StoreError> {
        let (totp, left, security_keys, passkeys): (i64, i64, i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT \
                   (SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL), \
                   (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL), \
                   (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1 AND kind = 'security_key'), \
                   (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1 AND kind = 'passkey')",
            )
            .bind(user.to_string())
            .fetch_one(pool)
            .await?
        });
        Ok(SecondFactors {
            totp: totp > 0,
            recovery_codes_left: left,
            security_keys,
            passkeys,
        })
    }

    /// Starts (or restarts) TOTP enrolment with a new sealed secret. Refused while a confirmed
    /// one exists: it must be removed first, with a fresh authentication.
    pub async fn begin_totp(
        &self,
        user: Uuid,
        sealed: &str,
        master_key_id: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let confirmed: Option<Option<i64>> =
                sqlx::query_scalar("SELECT confirmed_at FROM totp_credentials WHERE user_id = $1")
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            if matches!(confirmed, Some(Some(_))) {
                return Err(StoreError::Refused(
                    "an authenticator app is already set up; remove it first".into(),
                ));
            }
            sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO totp_credentials (user_id, secret, master_key_id, last_step, created_at) \
                 VALUES ($1, $2, $3, 0, $4)",
            )
            .bind(user.to_string())
            .bind(sealed)
            .bind(master_key_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn totp_of(&self, user: Uuid) -> Result<Option<StoredTotp>, StoreError> {
        let row: Option<(String, String, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT secret, master_key_id, confirmed_at FROM totp_credentials WHERE user_id = $1",
            )
            .bind(user.to_string())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(sealed, master_key_id, confirmed)| StoredTotp {
            sealed,
            master_key_id,
            confirmed: confirmed.is_some(),
        }))
    }

    /// Confirms enrolment of the secret `sealed` (the one the first code was checked against)
    /// with that code's step.
    pub async fn confirm_totp(
        &self,
        user: Uuid,
        sealed: &str,
        step: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let confirmed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE totp_credentials SET confirmed_at = $2, last_step = $3, last_used_at = $2 \
                 WHERE user_id = $1 AND confirmed_at IS NULL AND secret = $4",
            )
            .bind(user.to_string())
            .bind(now)
            .bind(step)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
            let confirmed = done.rows_affected() > 0;
            if confirmed {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            confirmed
        });
        Ok(confirmed)
    }

    /// Accepts a TOTP step if it is newer than every step accepted before.
    pub async fn accept_totp_step(&self, user: Uuid, step: i64) -> Result<bool, StoreError> {
        let now = self.now();
        let done = on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE totp_credentials SET last_step = $2, last_used_at = $3 \
                 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
            )
            .bind(user.to_string())
            .bind(step)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn remove_totp(&self, user: Uuid, audit: &AuditEntry) -> Result<bool, StoreError> {
        let now = self.now();
        let removed = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
            let removed = done.rows_affected() > 0;
            if removed {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            removed
        });
        Ok(removed)
    }

    /// Replaces a user's recovery codes with new ones (given as digests).
    pub async fn replace_recovery_codes(
        &self,
        user: Uuid,
        digests: &[String],
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
            for digest in digests {
                sqlx::query(
                    "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                )
                .bind(user.to_string())
                .bind(digest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Spends a recovery code; `false` if it is not one of the user's unused codes.
    pub async fn use_recovery_code(
        &self,
        user: Uuid,
        digest: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let used = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 \
                 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            )
            .bind(user.to_string())
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let used = done.rows_affected() > 0;
            if used {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            used
        });
        Ok(used)
    }

    /// Records a sign-in that passed its first factor (`flow.failures` is ignored: a new flow
    /// has none).
    pub async fn start_login_flow(
        &self,
        secret_hash: &str,
        flow: &LoginFlow,
        lifetime: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Abandoned flows go whenever a new one starts: no separate sweeper needed.
            sqlx::query("DELETE FROM login_flows WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO login_flows (secret_hash, user_id, amr, return_to, failures, created_at, expires_at, required, step_up_session) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8)",
            )
            .bind(secret_hash)
            .bind(flow.user_id.to_string())
            .bind(&flow.amr)
            .bind(&flow.return_to)
            .bind(now)
            .bind(now + lifetime)
            .bind(flow.required.as_str())
            .bind(flow.step_up_of.map(|id| id.to_string()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live flow behind a cookie's digest.
    pub async fn login_flow(&self, secret_hash: &str) -> Result<Option<LoginFlow>, StoreError> {
        let now = self.now();
        type Row = (String, String, String, i64, String, Option<String>);
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, amr, return_to, failures, required, step_up_session FROM login_flows \
                 WHERE secret_hash = $1 AND expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(user, amr, return_to, failures, required, step_up_of)| {
            Ok(LoginFlow {
                user_id: rows::uuid(&user, "login_flows.user_id")?,
                amr,
                return_to,
                failures,
                required: MfaPolicy::parse("required", &required)
                    .map_err(|_| StoreError::Corrupt("login_flows.required"))?,
                step_up_of: step_up_of
                    .map(|id| rows::uuid(&id, "login_flows.step_up_session"))
                    .transpose()?,
            })
        })
        .transpose()
    }

    /// Counts a wrong second factor; returns the failures so far.
    pub async fn login_flow_failed(&self, secret_hash: &str) -> Result<i64, StoreError> {
        let failures: Option<i64> = on_pool_write!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE login_flows SET failures = failures + 1 WHERE secret_hash = $1 RETURNING failures",
            )
            .bind(secret_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(failures.unwrap_or(i64::MAX))
    }

    /// Ends a flow (done or abandoned); `false` if it was already gone, so that a flow
    /// completes once even when two requests race.
    pub async fn end_login_flow(&self, secret_hash: &str) -> Result<bool, StoreError> {
        let done = on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM login_flows WHERE secret_hash = $1")
                .bind(secret_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }
}
