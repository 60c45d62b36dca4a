//! Rules for the names people type: usernames, group names, display names, emails.

use crate::IdentityError;

/// A group name as it appears in policies and routes, normalised.
pub fn group_name(raw: &str) -> Result<String, IdentityError> {
    handle("groups", raw)
}

/// Usernames and group names: lower-case ASCII letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit. They appear in URLs, headers and claims of every app, so they stay plain.
pub(crate) fn handle(field: &'static str, raw: &str) -> Result<String, IdentityError> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(IdentityError::invalid(field, "must not be empty"));
    }
    if name.len() > 64 {
        return Err(IdentityError::invalid(
            field,
            "must be at most 64 characters",
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok {
        return Err(IdentityError::invalid(
            field,
            "must start with a letter or a digit",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(IdentityError::invalid(
            field,
            format!("may contain only letters a-z, digits, '.', '_' and '-' (found {bad:?})"),
        ));
    }
    // Paths take an id or a name; a name shaped like an id would be read as one.
    if uuid::Uuid::parse_str(&name).is_ok() {
        return Err(IdentityError::invalid(
            field,
            "must not look like an id (a UUID)",
        ));
    }
    Ok(name)
}

/// Free text shown to people (display names, descriptions): no control characters, bounded.
pub(crate) fn text(
    field: &'static str,
    raw: &str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<String, IdentityError> {
    let value = raw.trim();
    if value.is_empty() && !allow_empty {
        return Err(IdentityError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(IdentityError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(IdentityError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// An email address, checked for shape only (delivery proves the rest), stored lower-case so
/// that uniqueness does not depend on how someone typed it.
pub(crate) fn email(raw: &str) -> Result<String, IdentityError> {
    let value = raw.trim().to_lowercase();
    if value.len() > 254 {
        return Err(IdentityError::invalid(
            "email",
            "must be at most 254 characters",
        ));
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(IdentityError::invalid(
            "email",
            "must look like name@example.org",
        ));
    };
    let domain_ok = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !domain.contains("..");
    if local.is_empty()
        || !domain_ok
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
        || domain.contains('@')
    {
        return Err(IdentityError::invalid(
            "email",
            "must look like name@example.org",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_normalised_and_checked() {
        assert_eq!(handle("username", "  Alice.B ").unwrap(), "alice.b");
        assert!(handle("username", "").is_err());
        assert!(handle("username", "-alice").is_err());
        assert!(handle("username", "al ice").is_err());
        assert!(handle("username", "al<script>").is_err());
        assert!(handle("username", &"a".repeat(65)).is_err());
        assert!(handle("username", &"a".repeat(64)).is_ok());
        assert!(handle("name", "00000000-0000-4000-8000-000000000001").is_err());
    }

    #[test]
    fn emails_are_shape_checked() {
        assert_eq!(email("Ana@Example.ORG").unwrap(), "ana@example.org");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "a b@example.org",
            "ana@.org",
            "ana@x..org",
        ] {
            assert!(email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn text_refuses_control_characters() {
        assert!(text("display_name", "Ana\u{0}", 10, false).is_err());
        assert!(text("display_name", "   ", 10, false).is_err());
        assert_eq!(text("description", "", 10, true).unwrap(), "");
    }
}
