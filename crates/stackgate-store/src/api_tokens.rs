//! API tokens: bearer credentials for automation, stored as digests only.

use crate::{
    Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows::{self, UserRow},
};
use stackgate_identity::{AuditEntry, OffsetDateTime, User, Uuid};

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who a presented token speaks for.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub token_id: Uuid,
    pub user: User,
    pub is_admin: bool,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    user_id: String,
    username: String,
    name: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        let opt = |t: Option<i64>| t.map(|t| rows::time(t, "api_tokens")).transpose();
        Ok(ApiToken {
            id: rows::uuid(&row.id, "api_tokens.id")?,
            user_id: rows::uuid(&row.user_id, "api_tokens.user_id")?,
            username: row.username,
            name: row.name,
            created_at: rows::time(row.created_at, "api_tokens.created_at")?,
            expires_at: opt(row.expires_at)?,
            last_used_at: opt(row.last_used_at)?,
            revoked_at: opt(row.revoked_at)?,
        })
    }
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.username, t.name, t.created_at, t.expires_at, \
     t.last_used_at, t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id";

/// `last_used_at` is refreshed at most this often, so a busy token does not write on every call.
const LAST_USED_GRANULARITY: i64 = 60;

impl Store {
    pub async fn create_api_token(
        &self,
        id: Uuid,
        user: Uuid,
        name: &str,
        secret_hash: &str,
        expires_at: Option<i64>,
        audit: &AuditEntry,
    ) -> Result<ApiToken, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_one(&mut *tx)
                .await?;
            if users == 0 {
                return Err(StoreError::NotFound("user"));
            }
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, secret_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string())
            .bind(user.to_string())
            .bind(name)
            .bind(secret_hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.get_api_token(id).await
    }

    pub async fn get_api_token(&self, id: Uuid) -> Result<ApiToken, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound("token"))?.try_into()
    }

    /// Tokens, newest first; of one user when `user` is given.
    pub async fn list_api_tokens(&self, user: Option<Uuid>) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!(
            "{TOKEN_SELECT} WHERE ($1 IS NULL OR t.user_id = $1) ORDER BY t.created_at DESC, t.id"
        );
        let rows: Vec<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(user.map(|u| u.to_string()))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// Revokes a token; revoking twice is refused so the audit log shows one revocation.
    pub async fn revoke_api_token(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<ApiToken, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let revoked: Option<Option<i64>> =
                sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            match revoked {
                None => return Err(StoreError::NotFound("token")),
                Some(Some(_)) => {
                    return Err(StoreError::Refused("this token is already revoked".into()));
                }
                Some(None) => {}
            }
            sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.get_api_token(id).await
    }

    /// Resolves a presented token's digest to its owner, if the token is live and the owner
    /// enabled. Lookup is by the digest's unique index: no secret is compared in application code.
    pub async fn authenticate_api_token(
        &self,
        secret_hash: &str,
    ) -> Result<Option<TokenOwner>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            token_id: String,
            #[sqlx(flatten)]
            user: UserRow,
            last_used_at: Option<i64>,
            admin: i64,
        }
        let now = self.now();
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.email, u.display_name, \
                   u.disabled, u.created_at, u.updated_at, \
                   (SELECT COUNT(*) FROM memberships m WHERE m.user_id = u.id AND m.group_id = $2) AS admin \
                 FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.secret_hash = $1 AND t.revoked_at IS NULL \
                   AND (t.expires_at IS NULL OR t.expires_at > $3) AND u.disabled = FALSE",
            )
            .bind(secret_hash)
            .bind(stackgate_identity::ADMINS_GROUP_ID.to_string())
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let token_id = rows::uuid(&row.token_id, "api_tokens.id")?;
        if row
            .last_used_at
            .is_none_or(|t| t < now - LAST_USED_GRANULARITY)
        {
            on_pool_write!(self, |pool| {
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(&row.token_id)
                    .bind(now)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Some(TokenOwner {
            token_id,
            user: row.user.try_into()?,
            is_admin: row.admin > 0,
        }))
    }
}
