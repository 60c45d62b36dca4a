//! Relying parties: who may ask for tokens, from where, for what.

use crate::{OidcError, SUPPORTED_SCOPES, SigningAlg};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Has a secret it can keep (a server-side app).
    Confidential,
    /// Cannot keep a secret (a single-page or native app); PKCE is its proof.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with a key the client registered (RFC 7523): no shared secret at all.
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    pub auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub id_token_alg: SigningAlg,
    /// Off only for a confidential legacy client, by an admin's explicit choice.
    pub require_pkce: bool,
    /// First-party apps of the organisation skip the consent page.
    pub first_party: bool,
    /// Public keys for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<crate::Jwks>,
    /// Where signed logout tokens are POSTed when a session ends (Back-Channel Logout 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// The app needs `sid` in logout tokens (it always gets one from Stackgate).
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// Loaded in an iframe on the signed-out page (Front-Channel Logout 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    /// For an app installed through Stackgate: who may sign in to it, and the role it is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AppAccess>,
}

/// Who reaches an installed app, and under which role. Each entry is a group name, or
/// `user:USERNAME` for one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppAccess {
    pub user_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    /// The claim that carries the role, when the app reads one.
    pub role_claim: Option<String>,
    /// The values the app reads for each role.
    pub user_role: String,
    pub admin_role: String,
}

/// The group whose members administer Stackgate and reach every app as admins.
const ADMINS: &str = "admins";

impl AppAccess {
    /// The role `username`, a member of `groups`, has in the app; `None` when they may not
    /// reach it. The admin value goes only to Stackgate's admins and the app's admin groups
    /// (or admin users), never to someone given the user role alone.
    pub fn role(&self, username: &str, groups: &[String]) -> Option<&str> {
        let me = format!("user:{username}");
        let member =
            |list: &[String]| list.contains(&me) || groups.iter().any(|g| list.contains(g));
        if groups.iter().any(|g| g == ADMINS) || member(&self.admin_groups) {
            Some(&self.admin_role)
        } else if member(&self.user_groups) {
            Some(&self.user_role)
        } else {
            None
        }
    }
}

impl Client {
    /// Whether a secret is generated for this client.
    pub fn uses_secret(&self) -> bool {
        matches!(
            self.auth_method,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A client as an admin describes it; [`NewClient::validate`] turns it into a [`Client`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewClient {
    pub id: Option<String>,
    pub name: String,
    pub public: bool,
    pub auth_method: Option<AuthMethod>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub id_token_alg: Option<SigningAlg>,
    pub require_pkce: Option<bool>,
    pub first_party: Option<bool>,
    pub jwks: Option<crate::Jwks>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: Option<bool>,
    pub frontchannel_logout_uri: Option<String>,
    #[serde(skip)]
    pub access: Option<AppAccess>,
}

fn invalid(field: &str, message: impl Into<String>) -> OidcError {
    OidcError::InvalidRequest(format!("{field}: {}", message.into()))
}

impl NewClient {
    pub fn validate(self, generated_id: String) -> Result<Client, OidcError> {
        let id = match self.id {
            Some(id) => check_client_id(&id)?,
            None => generated_id,
        };
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(invalid("name", "must be 1 to 100 printable characters"));
        }
        let kind = if self.public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        };
        let auth_method = match (kind, self.auth_method) {
            (ClientKind::Public, None | Some(AuthMethod::None)) => AuthMethod::None,
            (ClientKind::Public, Some(_)) => {
                return Err(invalid(
                    "auth_method",
                    "a public client has no secret: use none",
                ));
            }
            (ClientKind::Confidential, None) => AuthMethod::ClientSecretBasic,
            (ClientKind::Confidential, Some(AuthMethod::None)) => {
                return Err(invalid(
                    "auth_method",
                    "a confidential client must authenticate",
                ));
            }
            (ClientKind::Confidential, Some(method)) => method,
        };
        let grant_types = self.grant_types.unwrap_or_else(|| match kind {
            ClientKind::Public => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            ClientKind::Confidential => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        });
        if grant_types.is_empty() {
            return Err(invalid("grant_types", "must not be empty"));
        }
        if kind == ClientKind::Public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(invalid(
                "grant_types",
                "a public client cannot use client_credentials",
            ));
        }
        let public = kind == ClientKind::Public;
        for uri in &self.redirect_uris {
            check_redirect_uri("redirect_uris", uri, public)?;
        }
        for uri in &self.post_logout_redirect_uris {
            check_redirect_uri("post_logout_redirect_uris", uri, public)?;
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(invalid(
                "redirect_uris",
                "at least one is needed for the authorization_code grant",
            ));
        }
        let scopes = self
            .scopes
            .unwrap_or_else(|| SUPPORTED_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        for scope in &scopes {
            if !SUPPORTED_SCOPES.contains(&scope.as_str()) {
                return Err(invalid(
                    "scopes",
                    format!(
                        "unknown scope {scope:?}; known: {}",
                        SUPPORTED_SCOPES.join(", ")
                    ),
                ));
            }
        }
        let access_token_ttl = self.access_token_ttl.unwrap_or(300);
        if !(60..=86_400).contains(&access_token_ttl) {
            return Err(invalid(
                "access_token_ttl",
                "must be between 60 and 86400 seconds",
            ));
        }
        let refresh_token_ttl = self.refresh_token_ttl.unwrap_or(30 * 86_400);
        if !(60..=365 * 86_400).contains(&refresh_token_ttl) {
            return Err(invalid(
                "refresh_token_ttl",
                "must be between 60 seconds and 365 days",
            ));
        }
        let jwks = match (auth_method, self.jwks) {
            (AuthMethod::PrivateKeyJwt, Some(jwks)) if !jwks.keys.is_empty() => {
                for key in &jwks.keys {
                    if crate::SigningAlg::parse(&key.alg).is_none() || key.kid.is_empty() {
                        return Err(invalid(
                            "jwks",
                            "every key needs a kid and an alg of ES256, RS256 or EdDSA",
                        ));
                    }
                }
                crate::KeySet::from_jwks(&jwks).map_err(|e| invalid("jwks", e.to_string()))?;
                Some(jwks)
            }
            (AuthMethod::PrivateKeyJwt, _) => {
                return Err(invalid(
                    "jwks",
                    "private_key_jwt needs the client's public keys",
                ));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "jwks",
                    "only private_key_jwt clients register keys",
                ));
            }
            (_, None) => None,
        };
        for (field, uri) in [
            ("backchannel_logout_uri", &self.backchannel_logout_uri),
            ("frontchannel_logout_uri", &self.frontchannel_logout_uri),
        ] {
            if let Some(uri) = uri {
                check_redirect_uri(field, uri, false)?;
            }
        }
        let require_pkce = self.require_pkce.unwrap_or(true);
        if public && !require_pkce {
            return Err(invalid("require_pkce", "a public client always uses PKCE"));
        }
        Ok(Client {
            id,
            name,
            kind,
            auth_method,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            scopes,
            grant_types,
            access_token_ttl,
            refresh_token_ttl,
            id_token_alg: self.id_token_alg.unwrap_or(SigningAlg::ES256),
            require_pkce,
            first_party: self.first_party.unwrap_or(false),
            jwks,
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(true),
            frontchannel_logout_uri: self.frontchannel_logout_uri,
            access: self.access,
        })
    }
}

fn check_client_id(id: &str) -> Result<String, OidcError> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !ok {
        return Err(invalid(
            "id",
            "must be 1 to 64 characters of a-z, 0-9, '-', '_', '.'",
        ));
    }
    // Client-credentials tokens carry the client id as `sub`; it must never look like a user's.
    if stackgate_identity::Uuid::parse_str(id).is_ok() {
        return Err(invalid("id", "must not look like a user id (a UUID)"));
    }
    Ok(id.to_owned())
}

/// Absolute, no fragment, no credentials; https, or http on a loopback host; a private-use
/// scheme (`org.example.app:/cb`, RFC 8252 §7.1) only for public (native) clients.
fn check_redirect_uri(field: &str, uri: &str, public: bool) -> Result<(), OidcError> {
    let url =
        Url::parse(uri).map_err(|_| invalid(field, format!("{uri:?} is not an absolute URL")))?;
    if url.fragment().is_some() {
        return Err(invalid(field, format!("{uri:?} must not have a fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            field,
            format!("{uri:?} must not contain credentials"),
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                // RFC 6761: `localhost` and its subdomains resolve to loopback only.
                Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    format!("{uri:?} must use https (http only on loopback)"),
                ))
            }
        }
        scheme if public && scheme.contains('.') => Ok(()),
        _ => Err(invalid(field, format!("{uri:?} must use https"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_user_never_gets_the_admin_role() {
        let access = AppAccess {
            user_groups: vec!["staff".into()],
            admin_groups: vec!["it".into()],
            role_claim: Some("wekan_role".into()),
            user_role: "user".into(),
            admin_role: "admin".into(),
        };
        let groups = |g: &[&str]| g.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(access.role("ana", &groups(&["staff"])), Some("user"));
        assert_eq!(
            access.role("ana", &groups(&["staff", "press"])),
            Some("user")
        );
        assert_eq!(access.role("ana", &groups(&["it"])), Some("admin"));
        assert_eq!(
            access.role("ana", &groups(&["staff", "admins"])),
            Some("admin")
        );
        assert_eq!(access.role("ana", &groups(&["press"])), None);
        assert_eq!(access.role("ana", &[]), None);
        // One person, by name.
        let mut one = access.clone();
        one.user_groups.push("user:cy".into());
        one.admin_groups.push("user:di".into());
        assert_eq!(one.role("cy", &[]), Some("user"));
        assert_eq!(one.role("di", &groups(&["press"])), Some("admin"));
        assert_eq!(one.role("ana", &[]), None, "a name is not a group");
        assert_eq!(one.role("user", &groups(&["cy"])), None);
    }

    fn new(redirect: &str) -> NewClient {
        NewClient {
            name: "App".into(),
            redirect_uris: vec![redirect.into()],
            ..Default::default()
        }
    }

    #[test]
    fn secure_defaults() {
        let client = new("https://app.example.org/cb")
            .validate("gen".into())
            .unwrap();
        assert_eq!(client.id, "gen");
        assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);
        assert!(client.require_pkce);
        assert_eq!(client.id_token_alg, SigningAlg::ES256);
        assert!(!client.first_party);
    }

    #[test]
    fn bad_registrations_are_refused() {
        for bad in [
            "http://app.example.org/cb",
            "https://app.example.org/cb#x",
            "relative/cb",
            "https://u:p@app.example.org/cb",
            "com.example.app:/cb",
        ] {
            assert!(new(bad).validate("x".into()).is_err(), "{bad}");
        }
        let public_no_pkce = NewClient {
            public: true,
            require_pkce: Some(false),
            ..new("https://a.example/cb")
        };
        assert!(public_no_pkce.validate("x".into()).is_err());
        let public_native = NewClient {
            public: true,
            ..new("com.example.app:/cb")
        };
        assert!(public_native.validate("x".into()).is_ok());
        assert!(
            NewClient {
                id: Some("Bad Id".into()),
                ..new("https://a.example/cb")
            }
            .validate("x".into())
            .is_err()
        );
    }
}
