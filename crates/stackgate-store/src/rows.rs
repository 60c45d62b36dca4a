//! Rows as both backends return them, and their conversion into domain types.

use crate::StoreError;
use stackgate_identity::{AuditRecord, Group, OffsetDateTime, User, Uuid};

pub(crate) fn uuid(value: &str, what: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(value).map_err(|_| StoreError::Corrupt(what))
}

pub(crate) fn time(unix: i64, what: &'static str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| StoreError::Corrupt(what))
}

pub(crate) const USER_COLUMNS: &str =
    "id, username, email, display_name, disabled, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: uuid(&row.id, "users.id")?,
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            disabled: row.disabled,
            created_at: time(row.created_at, "users.created_at")?,
            updated_at: time(row.updated_at, "users.updated_at")?,
        })
    }
}

pub(crate) fn users(rows: Vec<UserRow>) -> Result<Vec<User>, StoreError> {
    rows.into_iter().map(User::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub mfa_policy: String,
    pub member_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<GroupRow> for Group {
    type Error = StoreError;

    fn try_from(row: GroupRow) -> Result<Self, StoreError> {
        Ok(Group {
            id: uuid(&row.id, "groups.id")?,
            name: row.name,
            description: row.description,
            builtin: row.builtin,
            mfa_policy: stackgate_identity::MfaPolicy::parse("mfa_policy", &row.mfa_policy)
                .map_err(|_| StoreError::Corrupt("groups.mfa_policy"))?,
            member_count: row.member_count,
            created_at: time(row.created_at, "groups.created_at")?,
            updated_at: time(row.updated_at, "groups.updated_at")?,
        })
    }
}

pub(crate) fn groups(rows: Vec<GroupRow>) -> Result<Vec<Group>, StoreError> {
    rows.into_iter().map(Group::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source_ip: Option<String>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            id: uuid(&row.id, "audit_log.id")?,
            at: time(row.at, "audit_log.at")?,
            actor_id: row
                .actor_id
                .as_deref()
                .map(|id| uuid(id, "audit_log.actor_id"))
                .transpose()?,
            actor: row.actor,
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            target: row.target,
            detail: row
                .detail
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| StoreError::Corrupt("audit_log.detail"))?
                .unwrap_or(serde_json::Value::Null),
            source_ip: row.source_ip,
        })
    }
}
