//! Users: who can sign in.

use crate::{IdentityError, names};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored user. The password hash never leaves the store through this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A user that passed validation and may be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
}

impl NewUser {
    /// Validates and normalises the fields; the display name defaults to the username.
    pub fn parse(
        username: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Self, IdentityError> {
        let username = names::handle("username", username)?;
        let email = email
            .filter(|e| !e.trim().is_empty())
            .map(names::email)
            .transpose()?;
        let display_name = match display_name {
            Some(name) => names::text("display_name", name, 128, false)?,
            None => username.clone(),
        };
        Ok(Self {
            id: Uuid::new_v4(),
            username,
            email,
            display_name,
        })
    }
}

/// A validated change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// `Some(None)` clears the email.
    pub email: Option<Option<String>>,
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
}

impl UserPatch {
    pub fn parse(
        email: Option<Option<&str>>,
        display_name: Option<&str>,
        disabled: Option<bool>,
    ) -> Result<Self, IdentityError> {
        let email = match email {
            None => None,
            Some(None) => Some(None),
            Some(Some(e)) if e.trim().is_empty() => Some(None),
            Some(Some(e)) => Some(Some(names::email(e)?)),
        };
        let display_name = display_name
            .map(|n| names::text("display_name", n, 128, false))
            .transpose()?;
        Ok(Self {
            email,
            display_name,
            disabled,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.display_name.is_none() && self.disabled.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_defaults_to_username() {
        let user = NewUser::parse("Ana", Some(""), None).unwrap();
        assert_eq!(user.username, "ana");
        assert_eq!(user.display_name, "ana");
        assert_eq!(user.email, None);
    }

    #[test]
    fn invalid_fields_are_named() {
        let err = NewUser::parse("ana", Some("nope"), None).unwrap_err();
        assert!(matches!(err, IdentityError::Invalid { field: "email", .. }));
        let err = UserPatch::parse(None, Some(""), None).unwrap_err();
        assert!(matches!(
            err,
            IdentityError::Invalid {
                field: "display_name",
                ..
            }
        ));
    }
}
