//! Groups: how admins grant access to apps, and the built-in `admins` group.

use crate::{IdentityError, names};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::{Uuid, uuid};

/// The id of the `admins` group, created by the first migration on every backend.
pub const ADMINS_GROUP_ID: Uuid = uuid!("00000000-0000-4000-8000-000000000001");
pub const ADMINS_GROUP_NAME: &str = "admins";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// Built-in groups cannot be renamed or deleted.
    pub builtin: bool,
    /// What sign-ins of its members must use.
    pub mfa_policy: crate::MfaPolicy,
    pub member_count: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub id: Uuid,
    pub name: String,
    pub description: String,
}

impl NewGroup {
    pub fn parse(name: &str, description: Option<&str>) -> Result<Self, IdentityError> {
        Ok(Self {
            id: Uuid::new_v4(),
            name: names::handle("name", name)?,
            description: names::text("description", description.unwrap_or(""), 512, true)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub mfa_policy: Option<crate::MfaPolicy>,
}

impl GroupPatch {
    pub fn parse(
        name: Option<&str>,
        description: Option<&str>,
        mfa_policy: Option<&str>,
    ) -> Result<Self, IdentityError> {
        Ok(Self {
            name: name.map(|n| names::handle("name", n)).transpose()?,
            description: description
                .map(|d| names::text("description", d, 512, true))
                .transpose()?,
            mfa_policy: mfa_policy
                .map(|p| crate::MfaPolicy::parse("mfa_policy", p))
                .transpose()?,
        })
    }
}
