//! Audit records: who changed what, when, from where. The store writes each entry in the same
//! transaction as the change it describes, so the log never claims a change that did not happen
//! nor misses one that did.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who is acting: a signed-in admin, an API token's owner, or a system actor such as the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub name: String,
    pub source_ip: Option<String>,
}

impl Actor {
    pub fn user(id: Uuid, name: &str, source_ip: Option<String>) -> Self {
        Self {
            user_id: Some(id),
            name: name.to_owned(),
            source_ip,
        }
    }

    /// An actor without an account: `cli`, `setup`, `scheduler`.
    pub fn system(name: &str) -> Self {
        Self {
            user_id: None,
            name: name.to_owned(),
            source_ip: None,
        }
    }

    pub fn entry(&self, action: &'static str, target: Target) -> AuditEntry {
        AuditEntry {
            actor: self.clone(),
            action,
            target,
            detail: serde_json::Value::Null,
        }
    }
}

/// What an action was applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User { id: Uuid, name: String },
    Group { id: Uuid, name: String },
    ApiToken { id: Uuid, name: String },
    System,
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::User { .. } => "user",
            Target::Group { .. } => "group",
            Target::ApiToken { .. } => "api_token",
            Target::System => "system",
        }
    }

    pub fn id(&self) -> Option<Uuid> {
        match self {
            Target::User { id, .. } | Target::Group { id, .. } | Target::ApiToken { id, .. } => {
                Some(*id)
            }
            Target::System => None,
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            Target::User { name, .. }
            | Target::Group { name, .. }
            | Target::ApiToken { name, .. } => Some(name),
            Target::System => None,
        }
    }
}

/// An entry about to be written. Details never carry secrets: callers pass names and ids only.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Target,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// An entry as read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub source_ip: Option<String>,
}
