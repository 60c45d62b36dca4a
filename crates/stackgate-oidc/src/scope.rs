//! Scopes: space-separated, from a known set.

use crate::OidcError;

pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

/// A validated, de-duplicated scope set, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a request's scope, keeping only what the client is allowed; unknown scopes are an
    /// error so a typo is seen instead of silently narrowing the grant.
    pub fn parse(raw: &str, allowed: &[String]) -> Result<Self, OidcError> {
        let mut scopes = Vec::new();
        for scope in raw.split(' ').filter(|s| !s.is_empty()) {
            if !SUPPORTED_SCOPES.contains(&scope) {
                return Err(OidcError::InvalidScope(format!("unknown scope {scope:?}")));
            }
            if !allowed.iter().any(|a| a == scope) {
                return Err(OidcError::InvalidScope(format!(
                    "this client may not request the scope {scope:?}"
                )));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        Ok(Self(scopes))
    }

    /// A scope as stored with a grant: it was validated when granted, so it is only split.
    pub fn granted(stored: &str) -> Self {
        Self(
            stored
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn as_string(&self) -> String {
        self.0.join(" ")
    }

    /// A narrower set for a refresh request: every scope must already be granted.
    pub fn narrow(&self, raw: Option<&str>) -> Result<Self, OidcError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(self.clone());
        };
        let requested = Self::parse(raw, &self.0).map_err(|_| {
            OidcError::InvalidScope("a refresh may not widen the granted scope".into())
        })?;
        Ok(requested)
    }
}
