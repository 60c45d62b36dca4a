//! Groups and memberships.

use crate::{
    Store, StoreError,
    audit::write_audit,
    error::map_unique,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows::{self, GroupRow, USER_COLUMNS, UserRow},
    users::{escape_like, guard_last_admin},
};
use stackgate_identity::{ADMINS_GROUP_ID, AuditEntry, Group, GroupPatch, NewGroup, User, Uuid};

/// Inside a transaction: `NotFound($what)` unless the count query finds the id.
macro_rules! require_row {
    ($conn:expr, $sql:literal, $id:expr, $what:literal) => {{
        let found: i64 = sqlx::query_scalar($sql)
            .bind($id.to_string())
            .fetch_one($conn)
            .await?;
        if found == 0 {
            return Err(StoreError::NotFound($what));
        }
    }};
}

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.description, g.builtin, g.mfa_policy, \
     (SELECT COUNT(*) FROM memberships m WHERE m.group_id = g.id) AS member_count, \
     g.created_at, g.updated_at FROM groups g";

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub groups: Vec<Group>,
    pub next_cursor: Option<String>,
}

impl Store {
    pub async fn create_group(
        &self,
        group: &NewGroup,
        audit: &AuditEntry,
    ) -> Result<Group, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO groups (id, name, description, builtin, created_at, updated_at) \
                 VALUES ($1, $2, $3, FALSE, $4, $4)",
            )
            .bind(group.id.to_string())
            .bind(&group.name)
            .bind(&group.description)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.get_group(group.id).await
    }

    pub async fn get_group(&self, id: Uuid) -> Result<Group, StoreError> {
        let sql = format!("{GROUP_SELECT} WHERE g.id = $1");
        let row: Option<GroupRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound("group"))?.try_into()
    }

    pub async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let sql = format!("{GROUP_SELECT} WHERE g.name = $1");
        let row: Option<GroupRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(name.trim().to_ascii_lowercase())
                .fetch_optional(pool)
                .await?
        });
        row.map(Group::try_from).transpose()
    }

    pub async fn list_groups(
        &self,
        after: Option<&str>,
        query: Option<&str>,
        limit: u32,
    ) -> Result<GroupListing, StoreError> {
        let limit = limit.clamp(1, 500);
        let pattern = query
            .filter(|q| !q.is_empty())
            .map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        let sql = format!(
            "{GROUP_SELECT} WHERE ($1 IS NULL OR g.name > $1) \
               AND ($2 IS NULL OR g.name LIKE $2 ESCAPE '\\' OR lower(g.description) LIKE $2 ESCAPE '\\') \
             ORDER BY g.name LIMIT $3"
        );
        let rows: Vec<GroupRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(&pattern)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let mut groups = rows::groups(rows)?;
        let next_cursor = if groups.len() > limit as usize {
            groups.truncate(limit as usize);
            groups.last().map(|g| g.name.clone())
        } else {
            None
        };
        Ok(GroupListing {
            groups,
            next_cursor,
        })
    }

    /// Renames or redescribes a group; built-in groups keep their name.
    pub async fn update_group(
        &self,
        id: Uuid,
        patch: &GroupPatch,
        audit: &AuditEntry,
    ) -> Result<Group, StoreError> {
        let current = self.get_group(id).await?;
        if current.builtin && patch.name.as_ref().is_some_and(|n| *n != current.name) {
            return Err(StoreError::Refused(format!(
                "the built-in group {:?} cannot be renamed",
                current.name
            )));
        }
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE groups SET name = COALESCE($2, name), description = COALESCE($3, description), \
                 mfa_policy = COALESCE($5, mfa_policy), updated_at = $4 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(&patch.name)
            .bind(&patch.description)
            .bind(now)
            .bind(patch.mfa_policy.map(|p| p.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("group"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        // Cached sessions carry their user's strictest group policy.
        self.sessions.evict_all();
        self.get_group(id).await
    }

    /// Deletes a group; its memberships go with it (ON DELETE CASCADE on both backends).
    pub async fn delete_group(&self, id: Uuid, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let builtin: Option<bool> =
                sqlx::query_scalar("SELECT builtin FROM groups WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            match builtin {
                None => return Err(StoreError::NotFound("group")),
                Some(true) => {
                    return Err(StoreError::Refused(
                        "built-in groups cannot be deleted".into(),
                    ));
                }
                Some(false) => {}
            }
            sqlx::query("DELETE FROM groups WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        // Cached sessions carry their user's admin flag.
        self.sessions.evict_all();
        Ok(())
    }

    /// Adds a member. Returns `false` (and records nothing) when already a member.
    pub async fn add_member(
        &self,
        group: Uuid,
        user: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let added = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            require_row!(
                &mut *tx,
                "SELECT COUNT(*) FROM groups WHERE id = $1",
                group,
                "group"
            );
            require_row!(
                &mut *tx,
                "SELECT COUNT(*) FROM users WHERE id = $1",
                user,
                "user"
            );
            let done = sqlx::query(
                "INSERT INTO memberships (group_id, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(group.to_string())
            .bind(user.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let added = done.rows_affected() > 0;
            if added {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            added
        });
        self.sessions.evict_user(user);
        Ok(added)
    }

    /// Removes a member. Removing the last enabled admin from `admins` is refused.
    pub async fn remove_member(
        &self,
        group: Uuid,
        user: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            require_row!(
                &mut *tx,
                "SELECT COUNT(*) FROM groups WHERE id = $1",
                group,
                "group"
            );
            require_row!(
                &mut *tx,
                "SELECT COUNT(*) FROM users WHERE id = $1",
                user,
                "user"
            );
            if group == ADMINS_GROUP_ID {
                guard_last_admin!(&mut *tx, user);
            }
            let done = sqlx::query("DELETE FROM memberships WHERE group_id = $1 AND user_id = $2")
                .bind(group.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("membership"));
            }
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        self.sessions.evict_user(user);
        Ok(())
    }

    /// Members of a group, in username order, one page at a time.
    pub async fn group_members(
        &self,
        group: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        self.get_group(group).await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id IN \
               (SELECT user_id FROM memberships WHERE group_id = $1) \
             AND ($2 IS NULL OR username > $2) ORDER BY username LIMIT $3"
        );
        let rows: Vec<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(group.to_string())
                .bind(after)
                .bind(i64::from(limit.clamp(1, 500)))
                .fetch_all(pool)
                .await?
        });
        rows::users(rows)
    }

    /// All memberships, of every group: for consistency checks.
    pub async fn count_memberships(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM memberships")
                .fetch_one(pool)
                .await?
        }))
    }

    /// The groups a user belongs to, by name.
    pub async fn groups_of(&self, user: Uuid) -> Result<Vec<Group>, StoreError> {
        let sql = format!(
            "{GROUP_SELECT} WHERE g.id IN (SELECT group_id FROM memberships WHERE user_id = $1) \
             ORDER BY g.name"
        );
        let rows: Vec<GroupRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(user.to_string())
                .fetch_all(pool)
                .await?
        });
        rows::groups(rows)
    }
}
