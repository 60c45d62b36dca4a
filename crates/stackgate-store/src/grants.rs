//! Authorization codes, grants and their tokens. A grant is one authorization of one client
//! (from a code exchange or client credentials); every access and refresh token belongs to
//! one. Revoking the grant ends all of its tokens at once, which is what code replay and
//! refresh-token reuse call for.
//!
//! Code redemption and refresh rotation each happen in one transaction with the tokens they
//! issue, so a replay racing the first use either finds the code spent or revokes what it issued.

use crate::{
    Store, StoreError,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::Uuid;

#[derive(Debug, Clone)]
pub struct NewCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: String,
    pub lifetime: i64,
}

/// A code as redeemed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeGrant {
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: String,
}

/// What a grant was given for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveGrant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub scope: String,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Option<String>,
}

impl ActiveGrant {
    pub fn user(&self) -> Result<Option<Uuid>, StoreError> {
        self.user_id
            .as_deref()
            .map(|u| rows::uuid(u, "oauth_grants.user_id"))
            .transpose()
    }
}

/// The grant and tokens to write.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<String>,
    pub scope: String,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    pub amr: Option<String>,
    pub access_jti: String,
    pub access_expires_at: i64,
    /// Digest and expiry of the refresh token, when one is issued.
    pub refresh: Option<(String, i64)>,
}

pub enum Redemption<T, E> {
    /// The code was fresh and the tokens are written.
    Issued(T),
    /// The code was fresh but the request did not match it; the code is spent anyway.
    Rejected(E),
    /// The code was used before: everything issued from it is now revoked.
    Replayed,
    /// The sign-in the code came from has ended (signed out since): the code is spent.
    SessionEnded,
    /// No such code, or it expired.
    Invalid,
}

pub enum RefreshOutcome<T, E> {
    Issued(T),
    Rejected(E),
    /// An already-rotated token came back: the whole grant is revoked.
    Reused,
    Invalid,
}

/// A live access token's grant.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    pub grant: ActiveGrant,
    pub expires_at: i64,
}

macro_rules! revoke_grant {
    ($conn:expr, $grant:expr, $now:expr) => {{
        sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind($grant)
            .bind($now)
            .execute(&mut *$conn)
            .await?;
    }};
}

const GRANT_COLUMNS: &str =
    "g.id, g.client_id, g.user_id, g.session_id, g.scope, g.auth_time, g.acr, g.amr";

macro_rules! insert_grant {
    ($conn:expr, $grant:expr, $code_hash:expr, $now:expr) => {{
        let grant: &NewGrant = $grant;
        sqlx::query(
            "INSERT INTO oauth_grants (id, client_id, user_id, session_id, code_hash, scope, auth_time, acr, amr, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(grant.id.to_string())
        .bind(&grant.client_id)
        .bind(grant.user_id.map(|u| u.to_string()))
        .bind(&grant.session_id)
        .bind($code_hash)
        .bind(&grant.scope)
        .bind(grant.auth_time)
        .bind(&grant.acr)
        .bind(&grant.amr)
        .bind($now)
        .execute(&mut *$conn)
        .await?;
        insert_tokens!($conn, grant, $now);
    }};
}

macro_rules! insert_tokens {
    ($conn:expr, $grant:expr, $now:expr) => {{
        let grant: &NewGrant = $grant;
        sqlx::query("INSERT INTO access_tokens (jti, grant_id, expires_at) VALUES ($1, $2, $3)")
            .bind(&grant.access_jti)
            .bind(grant.id.to_string())
            .bind(grant.access_expires_at)
            .execute(&mut *$conn)
            .await?;
        if let Some((hash, expires_at)) = &grant.refresh {
            sqlx::query("INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(hash)
                .bind(grant.id.to_string())
                .bind($now)
                .bind(*expires_at)
                .execute(&mut *$conn)
                .await?;
        }
    }};
}

impl Store {
    pub async fn insert_code(&self, code: &NewCode) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO authorization_codes (code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, \
                   code_challenge, auth_time, acr, amr, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&code.code_hash)
            .bind(&code.client_id)
            .bind(code.user_id.to_string())
            .bind(code.session_id.to_string())
            .bind(&code.redirect_uri)
            .bind(&code.scope)
            .bind(&code.nonce)
            .bind(&code.code_challenge)
            .bind(code.auth_time)
            .bind(&code.acr)
            .bind(&code.amr)
            .bind(now)
            .bind(now + code.lifetime)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The user a code was issued to, without spending it.
    pub async fn code_owner(&self, code_hash: &str) -> Result<Option<Uuid>, StoreError> {
        let user: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT user_id FROM authorization_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(pool)
                .await?
        });
        user.map(|u| rows::uuid(&u, "authorization_codes.user_id"))
            .transpose()
    }

    /// Spends a code and, if `plan` accepts the request, writes the grant and tokens it plans,
    /// all in one transaction.
    pub async fn exchange_code<T, E>(
        &self,
        code_hash: &str,
        plan: impl FnOnce(&CodeGrant) -> Result<(NewGrant, T), E>,
    ) -> Result<Redemption<T, E>, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let fresh: Option<CodeGrant> = sqlx::query_as(
                "UPDATE authorization_codes SET used_at = $2 \
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                 RETURNING client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, acr, amr",
            )
            .bind(code_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(code) = fresh else {
                let used: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT used_at FROM authorization_codes WHERE code_hash = $1",
                )
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = if matches!(used, Some(Some(_))) {
                    sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE code_hash = $1 AND revoked_at IS NULL")
                        .bind(code_hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Redemption::Replayed
                } else {
                    Redemption::Invalid
                };
                tx.commit().await?;
                return Ok(outcome);
            };
            // Touching the session row locks it on PostgreSQL: a sign-out deletes that row first,
            // so it either waits for this exchange (and then revokes its grant) or has already
            // happened (and the code is refused here).
            let live = sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at WHERE id = $1")
                .bind(&code.session_id)
                .execute(&mut *tx)
                .await?;
            if live.rows_affected() == 0 {
                tx.commit().await?;
                return Ok(Redemption::SessionEnded);
            }
            match plan(&code) {
                Ok((grant, value)) => {
                    insert_grant!(&mut *tx, &grant, Some(code_hash), now);
                    tx.commit().await?;
                    Ok(Redemption::Issued(value))
                }
                Err(rejection) => {
                    tx.commit().await?;
                    Ok(Redemption::Rejected(rejection))
                }
            }
        })
    }

    /// Writes a grant that comes from no code (client credentials).
    pub async fn create_grant(&self, grant: &NewGrant) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_grant!(&mut *tx, grant, None::<&str>, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Rotates a refresh token: the presented one is spent, and `plan` issues its successor in
    /// the same grant. A spent token presented again revokes the grant.
    pub async fn rotate_refresh<T, E>(
        &self,
        token_hash: &str,
        plan: impl FnOnce(&ActiveGrant) -> Result<(NewGrant, T), E>,
    ) -> Result<RefreshOutcome<T, E>, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let grant_id: Option<String> = sqlx::query_scalar(
                "UPDATE refresh_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(grant_id) = grant_id else {
                let used: Option<(Option<i64>, String)> = sqlx::query_as(
                    "SELECT used_at, grant_id FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = match used {
                    Some((Some(_), grant_id)) => {
                        revoke_grant!(&mut *tx, &grant_id, now);
                        RefreshOutcome::Reused
                    }
                    _ => RefreshOutcome::Invalid,
                };
                tx.commit().await?;
                return Ok(outcome);
            };
            let sql = format!(
                "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.id = $1 AND g.revoked_at IS NULL"
            );
            let grant: Option<ActiveGrant> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&grant_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(grant) = grant else {
                tx.commit().await?;
                return Ok(RefreshOutcome::Invalid);
            };
            match plan(&grant) {
                Ok((next, value)) => {
                    insert_tokens!(&mut *tx, &next, now);
                    tx.commit().await?;
                    Ok(RefreshOutcome::Issued(value))
                }
                Err(rejection) => {
                    // Not a sign of theft (a narrower scope asked wrongly): the token stays usable.
                    tx.rollback().await?;
                    Ok(RefreshOutcome::Rejected(rejection))
                }
            }
        })
    }

    /// The grant of a live access token: not expired, not revoked, its grant not revoked.
    pub async fn active_access_token(&self, jti: &str) -> Result<Option<ActiveToken>, StoreError> {
        self.active_token(
            "access_tokens t ON t.jti = $1 AND t.revoked_at IS NULL",
            jti,
        )
        .await
    }

    /// The grant of a live refresh token (not yet rotated), and the token's expiry.
    pub async fn active_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ActiveToken>, StoreError> {
        self.active_token(
            "refresh_tokens t ON t.token_hash = $1 AND t.used_at IS NULL",
            token_hash,
        )
        .await
    }

    /// `token` (from the table and condition in `join`) with its grant, both live.
    async fn active_token(
        &self,
        join: &'static str,
        key: &str,
    ) -> Result<Option<ActiveToken>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            grant: ActiveGrant,
            expires_at: i64,
        }
        let now = self.now();
        let sql = format!(
            "SELECT {GRANT_COLUMNS}, t.expires_at FROM oauth_grants g JOIN {join} \
             WHERE t.grant_id = g.id AND g.revoked_at IS NULL AND t.expires_at > $2"
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(key)
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| ActiveToken {
            grant: r.grant,
            expires_at: r.expires_at,
        }))
    }

    /// RFC 7009: revoking a refresh token ends its grant (and so every access token of it);
    /// revoking an access token ends that token. Only the client the token was issued to may
    /// revoke it; anything else is a silent no-op, as the RFC asks.
    pub async fn revoke_token(
        &self,
        client_id: &str,
        refresh_hash: &str,
        access_jti: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let grant: Option<String> = sqlx::query_scalar(
                "SELECT g.id FROM refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id \
                 WHERE r.token_hash = $1 AND g.client_id = $2",
            )
            .bind(refresh_hash)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(grant) = grant {
                revoke_grant!(&mut *tx, &grant, now);
            }
            if let Some(jti) = access_jti {
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $3 WHERE jti = $1 AND revoked_at IS NULL \
                     AND grant_id IN (SELECT id FROM oauth_grants WHERE client_id = $2)",
                )
                .bind(jti)
                .bind(client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The scope a user has consented to for a client, if any.
    pub async fn consent(&self, user: Uuid, client_id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user.to_string())
                .bind(client_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The apps a user has consented to: `(client_id, scope, when)`.
    pub async fn consents_of(&self, user: Uuid) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT client_id, scope, created_at FROM consents WHERE user_id = $1 ORDER BY client_id")
                .bind(user.to_string())
                .fetch_all(pool)
                .await?
        }))
    }

    /// Withdraws a consent and revokes the user's grants to that app, so its tokens stop too.
    pub async fn revoke_consent(
        &self,
        user: Uuid,
        client_id: &str,
        audit: &stackgate_identity::AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2")
                .bind(user.to_string())
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user.to_string())
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("consent"));
            }
            sqlx::query("UPDATE oauth_grants SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL")
                .bind(user.to_string())
                .bind(client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            crate::audit::write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn save_consent(
        &self,
        user: Uuid,
        client_id: &str,
        scope: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scope, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scope = $3, created_at = $4",
            )
            .bind(user.to_string())
            .bind(client_id)
            .bind(scope)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
