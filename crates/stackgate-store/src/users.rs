//! Users: create, read, list, change, delete.

use crate::{
    Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows::{self, USER_COLUMNS, UserRow},
};
use stackgate_identity::{
    ADMINS_GROUP_ID, AuditEntry, NewUser, PasswordHash, User, UserPatch, Uuid,
};

/// Inside a transaction: refuses when `$user` is an admin and no other enabled admin exists.
macro_rules! guard_last_admin {
    ($conn:expr, $user:expr) => {{
        let user: Uuid = $user;
        // Lock the admins group's row first: concurrent guarded changes then run one after the
        // other on PostgreSQL, so two admins removing each other cannot both pass the count.
        sqlx::query("UPDATE groups SET updated_at = updated_at WHERE id = $1")
            .bind(ADMINS_GROUP_ID.to_string())
            .execute(&mut *$conn)
            .await?;
        let is_admin: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE group_id = $1 AND user_id = $2",
        )
        .bind(ADMINS_GROUP_ID.to_string())
        .bind(user.to_string())
        .fetch_one(&mut *$conn)
        .await?;
        if is_admin > 0 {
            let others: i64 = sqlx::query_scalar(crate::users::ENABLED_ADMINS_OTHER_THAN)
                .bind(ADMINS_GROUP_ID.to_string())
                .bind(user.to_string())
                .fetch_one(&mut *$conn)
                .await?;
            if others == 0 {
                return Err(StoreError::Refused(crate::users::LAST_ADMIN.into()));
            }
        }
    }};
}
pub(crate) use guard_last_admin;

/// Which users to list: one page in username order.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Usernames after this one (the previous page's last username).
    pub after: Option<String>,
    /// Substring of username, email or display name, case-insensitive.
    pub query: Option<String>,
    pub disabled: Option<bool>,
    /// Members of this group only.
    pub group: Option<Uuid>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct UserListing {
    pub users: Vec<User>,
    /// Present when another page may follow.
    pub next_cursor: Option<String>,
}

/// Escapes `%`, `_` and `\` so user input is matched literally by `LIKE ... ESCAPE '\'`.
pub(crate) fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) const ENABLED_ADMINS_OTHER_THAN: &str = "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
     WHERE m.group_id = $1 AND u.disabled = FALSE AND u.id <> $2";

pub(crate) const LAST_ADMIN: &str =
    "this is the last enabled admin; make another user an admin first";

impl Store {
    /// Creates a user, optionally with a password and group memberships, in one transaction.
    pub async fn create_user(
        &self,
        user: &NewUser,
        password: Option<&PasswordHash>,
        groups: &[Uuid],
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let now = self.now();
        let row: UserRow = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row: UserRow = sqlx::query_as(
                "INSERT INTO users (id, username, email, display_name, password_hash, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) \
                 RETURNING id, username, email, display_name, disabled, created_at, updated_at",
            )
            .bind(user.id.to_string())
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(password.map(PasswordHash::as_str))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_unique)?;
            let mut seen = Vec::with_capacity(groups.len());
            for group in groups.iter().filter(|g| {
                let new = !seen.contains(*g);
                seen.push(**g);
                new
            }) {
                let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM groups WHERE id = $1")
                    .bind(group.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                if found == 0 {
                    return Err(StoreError::NotFound("group"));
                }
                sqlx::query(
                    "INSERT INTO memberships (group_id, user_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(group.to_string())
                .bind(user.id.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
            row
        });
        row.try_into()
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound("user"))?.try_into()
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.login_candidate(username).await?.map(|(user, _)| user))
    }

    /// The user and password hash a login checks; `None` when no such user exists.
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<Option<(User, Option<PasswordHash>)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: Option<String>,
        }
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(username.trim().to_ascii_lowercase())
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| {
            Ok((
                r.user.try_into()?,
                r.password_hash.map(PasswordHash::from_stored),
            ))
        })
        .transpose()
    }

    pub async fn list_users(&self, filter: &UserFilter) -> Result<UserListing, StoreError> {
        let pattern = filter
            .query
            .as_deref()
            .filter(|q| !q.is_empty())
            .map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        let limit = filter.limit.clamp(1, 500);
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE ($1 IS NULL OR username > $1) \
               AND ($2 IS NULL OR username LIKE $2 ESCAPE '\\' OR email LIKE $2 ESCAPE '\\' \
                    OR lower(display_name) LIKE $2 ESCAPE '\\') \
               AND ($3 IS NULL OR disabled = $3) \
               AND ($4 IS NULL OR id IN (SELECT user_id FROM memberships WHERE group_id = $4)) \
             ORDER BY username LIMIT $5"
        );
        let rows: Vec<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&filter.after)
                .bind(&pattern)
                .bind(filter.disabled)
                .bind(filter.group.map(|g| g.to_string()))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let mut users = rows::users(rows)?;
        let next_cursor = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| u.username.clone())
        } else {
            None
        };
        Ok(UserListing { users, next_cursor })
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Applies a validated patch. Disabling the last enabled admin is refused.
    pub async fn update_user(
        &self,
        id: Uuid,
        patch: &UserPatch,
        audit: &AuditEntry,
    ) -> Result<User, StoreError> {
        let now = self.now();
        let (set_email, email) = match &patch.email {
            Some(email) => (true, email.clone()),
            None => (false, None),
        };
        let row: Option<UserRow> = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if patch.disabled == Some(true) {
                guard_last_admin!(&mut *tx, id);
            }
            let row: Option<UserRow> = sqlx::query_as(
                "UPDATE users SET \
                   email = CASE WHEN $2 THEN $3 ELSE email END, \
                   display_name = COALESCE($4, display_name), \
                   disabled = COALESCE($5, disabled), \
                   updated_at = $6 \
                 WHERE id = $1 \
                 RETURNING id, username, email, display_name, disabled, created_at, updated_at",
            )
            .bind(id.to_string())
            .bind(set_email)
            .bind(&email)
            .bind(&patch.display_name)
            .bind(patch.disabled)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_unique)?;
            if row.is_some() {
                write_audit!(&mut *tx, audit, now);
                tx.commit().await?;
            }
            row
        });
        self.sessions.evict_user(id);
        row.ok_or(StoreError::NotFound("user"))?.try_into()
    }

    pub async fn set_password(
        &self,
        id: Uuid,
        password: &PasswordHash,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done =
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.to_string())
                    .bind(password.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("user"));
            }
            // A sign-in that proved the old password must not finish after the change.
            sqlx::query("DELETE FROM login_flows WHERE user_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.evict_user(id);
        Ok(())
    }

    /// Deletes a user with its memberships, tokens and sessions. The last admin cannot go.
    pub async fn delete_user(&self, id: Uuid, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            guard_last_admin!(&mut *tx, id);
            let done = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("user"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.evict_user(id);
        Ok(())
    }

    /// Whether an enabled admin other than `user` exists.
    pub async fn other_enabled_admin_exists(&self, user: Uuid) -> Result<bool, StoreError> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(ENABLED_ADMINS_OTHER_THAN)
                .bind(ADMINS_GROUP_ID.to_string())
                .bind(user.to_string())
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }

    /// Whether the user is an enabled member of `admins`.
    pub async fn is_admin(&self, user: Uuid) -> Result<bool, StoreError> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.group_id = $1 AND m.user_id = $2 AND u.disabled = FALSE",
            )
            .bind(ADMINS_GROUP_ID.to_string())
            .bind(user.to_string())
            .fetch_one(pool)
            .await?
        });
        Ok(count > 0)
    }
}
