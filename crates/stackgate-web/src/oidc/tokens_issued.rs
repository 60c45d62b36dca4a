//! Minting the tokens of a grant: the access token (RFC 9068 JWT), the ID token, and an opaque
//! refresh token whose digest alone is stored.

use super::{ID_TOKEN_LIFETIME, keyring::Keys};
use serde::Serialize;
use stackgate_identity::{SecretToken, User, Uuid};
use stackgate_oidc::{
    AccessTokenClaims, Client, IdTokenClaims, OidcError, Scopes, UserClaims, at_hash, sign,
};
use stackgate_store::NewGrant;

/// The token endpoint's success response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Who the tokens are about and how they authenticated.
pub(crate) struct Authentication<'a> {
    pub user: &'a User,
    pub groups: &'a [String],
    pub session_id: Option<&'a str>,
    pub auth_time: i64,
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
}

/// The claims each granted scope releases about the user, and an installed app's role claim.
pub(crate) fn user_claims(
    user: &User,
    groups: &[String],
    scopes: &Scopes,
    client: &Client,
) -> UserClaims {
    let mut claims = UserClaims::default();
    if scopes.contains("profile") {
        claims.preferred_username = Some(user.username.clone());
        claims.name = Some(user.display_name.clone());
        claims.updated_at = Some(user.updated_at.unix_timestamp());
    }
    if scopes.contains("email") && user.email.is_some() {
        claims.email = user.email.clone();
        claims.email_verified = Some(false);
    }
    if scopes.contains("groups") {
        claims.groups = Some(groups.to_vec());
    }
    if let Some(access) = &client.access
        && let (Some(claim), Some(role)) = (&access.role_claim, access.role(&user.username, groups))
    {
        claims.app_role.insert(claim.clone(), role.to_owned());
    }
    claims
}

/// Whether the user (a member of `groups`) may still use `client`: an installed app admits
/// only the groups an admin gave it.
pub(crate) fn may_use(client: &Client, user: &User, groups: &[String]) -> Result<(), OidcError> {
    match &client.access {
        Some(access) if access.role(&user.username, groups).is_none() => Err(
            OidcError::InvalidGrant("the user no longer has access to this app".into()),
        ),
        _ => Ok(()),
    }
}

pub(crate) struct Mint<'a> {
    pub keys: &'a Keys,
    pub issuer: &'a str,
    pub client: &'a Client,
    pub now: i64,
}

impl Mint<'_> {
    /// Tokens for a user. `grant_id` is new for a code exchange and the existing grant's for a
    /// refresh; `with_refresh` when the client may refresh.
    pub(crate) fn for_user(
        &self,
        grant_id: Uuid,
        auth: &Authentication<'_>,
        scopes: &Scopes,
        with_refresh: bool,
    ) -> Result<(NewGrant, TokenResponse), OidcError> {
        may_use(self.client, auth.user, auth.groups)?;
        let jti = Uuid::new_v4().to_string();
        let access_expires_at = self.now + self.client.access_token_ttl;
        let access = AccessTokenClaims {
            iss: self.issuer.to_owned(),
            sub: auth.user.id.to_string(),
            aud: self.issuer.to_owned(),
            exp: access_expires_at,
            iat: self.now,
            jti: jti.clone(),
            client_id: self.client.id.clone(),
            scope: scopes.as_string(),
            auth_time: Some(auth.auth_time),
            acr: auth.acr.map(str::to_owned),
            amr: Some(auth.amr.to_vec()),
            sid: auth.session_id.map(str::to_owned),
        };
        let access_token = sign(
            self.keys.signer(stackgate_oidc::SigningAlg::ES256)?,
            "at+jwt",
            &access,
        )?;
        let id_token = if scopes.contains("openid") {
            let alg = self.client.id_token_alg;
            let claims = IdTokenClaims {
                iss: self.issuer.to_owned(),
                sub: auth.user.id.to_string(),
                aud: self.client.id.clone(),
                azp: self.client.id.clone(),
                exp: self.now + ID_TOKEN_LIFETIME,
                iat: self.now,
                auth_time: auth.auth_time,
                nonce: auth.nonce.map(str::to_owned),
                acr: auth.acr.map(str::to_owned),
                amr: auth.amr.to_vec(),
                sid: auth.session_id.unwrap_or_default().to_owned(),
                at_hash: Some(at_hash(alg, &access_token)),
                user: user_claims(auth.user, auth.groups, scopes, self.client),
            };
            Some(sign(self.keys.signer(alg)?, "JWT", &claims)?)
        } else {
            None
        };
        let refresh = if with_refresh {
            Some(SecretToken::generate("sgr_").map_err(|e| OidcError::Key(e.to_string()))?)
        } else {
            None
        };
        let grant = NewGrant {
            id: grant_id,
            client_id: self.client.id.clone(),
            user_id: Some(auth.user.id),
            session_id: auth.session_id.map(str::to_owned),
            scope: scopes.as_string(),
            auth_time: Some(auth.auth_time),
            acr: auth.acr.map(str::to_owned),
            amr: Some(auth.amr.join(" ")),
            access_jti: jti,
            access_expires_at,
            refresh: refresh
                .as_ref()
                .map(|r| (r.hash.clone(), self.now + self.client.refresh_token_ttl)),
        };
        let response = TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.client.access_token_ttl,
            scope: scopes.as_string(),
            id_token,
            refresh_token: refresh.map(|r| r.plaintext),
        };
        Ok((grant, response))
    }

    /// An access token for the client itself (client credentials): no user, no ID token.
    pub(crate) fn for_client(
        &self,
        scopes: &Scopes,
    ) -> Result<(NewGrant, TokenResponse), OidcError> {
        let jti = Uuid::new_v4().to_string();
        let access_expires_at = self.now + self.client.access_token_ttl;
        let access = AccessTokenClaims {
            iss: self.issuer.to_owned(),
            sub: self.client.id.clone(),
            aud: self.issuer.to_owned(),
            exp: access_expires_at,
            iat: self.now,
            jti: jti.clone(),
            client_id: self.client.id.clone(),
            scope: scopes.as_string(),
            auth_time: None,
            acr: None,
            amr: None,
            sid: None,
        };
        let access_token = sign(
            self.keys.signer(stackgate_oidc::SigningAlg::ES256)?,
            "at+jwt",
            &access,
        )?;
        let grant = NewGrant {
            id: Uuid::new_v4(),
            client_id: self.client.id.clone(),
            user_id: None,
            session_id: None,
            scope: scopes.as_string(),
            auth_time: None,
            acr: None,
            amr: None,
            access_jti: jti,
            access_expires_at,
            refresh: None,
        };
        let response = TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.client.access_token_ttl,
            scope: scopes.as_string(),
            id_token: None,
            refresh_token: None,
        };
        Ok((grant, response))
    }
}
