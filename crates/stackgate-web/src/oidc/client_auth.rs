//! Client authentication at the token, introspection and revocation endpoints: HTTP Basic
//! (`client_secret_basic`), form fields (`client_secret_post`), or none for public clients.
//! Each client must use the method it registered.

use super::{errors::OAuthError, params::Params};
use crate::state::AppState;
use axum::http::{HeaderMap, header};
use base64::{Engine, engine::general_purpose::STANDARD};
use stackgate_identity::{hash_secret, secrets_equal};
use stackgate_oidc::{AuthMethod, Client, KeySet, verify_client_assertion};

fn refuse(description: &str, basic: bool) -> OAuthError {
    OAuthError::Client {
        description: description.to_owned(),
        basic,
    }
}

/// `(client_id, secret)` from `Authorization: Basic`, form-decoded as RFC 6749 §2.3.1 asks.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Option<(String, String)> {
        let raw = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = raw.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Some((unescape(id)?, unescape(secret)?))
    };
    Some(decode().ok_or(()))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `private_key_jwt` (RFC 7523 §2.2): the client proves itself with a JWT signed by its key.
async fn by_assertion(
    state: &AppState,
    params: &Params,
    assertion: &str,
) -> Result<Client, OAuthError> {
    if params.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(refuse("client_assertion_type must be jwt-bearer", false));
    }
    // The client is named by client_id or, failing that, by the assertion's own (unverified)
    // subject; the signature check against that client's keys then decides.
    let named = match params.get("client_id") {
        Some(id) => id.to_owned(),
        None => unverified_subject(assertion)
            .ok_or_else(|| refuse("the client assertion names no client", false))?,
    };
    let Some(stored) = state.store.get_client(&named).await? else {
        return Err(refuse("unknown client", false));
    };
    let client = stored.client;
    if client.auth_method != AuthMethod::PrivateKeyJwt {
        return Err(refuse(
            &format!(
                "this client must authenticate with {}",
                client.auth_method.as_str()
            ),
            false,
        ));
    }
    let jwks = client
        .jwks
        .as_ref()
        .ok_or_else(|| refuse("this client has no registered keys", false))?;
    let keys = KeySet::from_jwks(jwks)
        .map_err(|_| refuse("this client's registered keys are unusable", false))?;
    let issuer = &state.config.issuer;
    let endpoints = [
        format!("{issuer}/token"),
        format!("{issuer}/introspect"),
        format!("{issuer}/revoke"),
    ];
    let mut audiences: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    audiences.push(issuer);
    let now = state.clock.unix();
    let claims = verify_client_assertion(&keys, assertion, &client.id, &audiences, now)
        .map_err(|e| refuse(&e.to_string(), false))?;
    let jti = hash_secret(&format!("{}:{}", client.id, claims.jti));
    if !state
        .store
        .record_client_assertion(&client.id, &jti, claims.exp)
        .await?
    {
        return Err(refuse("this client assertion was already used", false));
    }
    Ok(client)
}

pub(crate) fn unverified_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, OAuthError> {
    if let Some(assertion) = params.get("client_assertion") {
        if basic_credentials(headers).is_some() || params.get("client_secret").is_some() {
            return Err(refuse(
                "use one client authentication method, not two",
                false,
            ));
        }
        return by_assertion(state, params, assertion).await;
    }
    let (client_id, secret, method) = match basic_credentials(headers) {
        Some(Ok((id, secret))) => {
            if params.get("client_secret").is_some() {
                return Err(refuse(
                    "use one client authentication method, not two",
                    true,
                ));
            }
            (id, Some(secret), AuthMethod::ClientSecretBasic)
        }
        Some(Err(())) => return Err(refuse("malformed Basic credentials", true)),
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => (
                id.to_owned(),
                Some(secret.to_owned()),
                AuthMethod::ClientSecretPost,
            ),
            (Some(id), None) => (id.to_owned(), None, AuthMethod::None),
            (None, _) => return Err(refuse("client authentication is required", false)),
        },
    };
    let basic = method == AuthMethod::ClientSecretBasic;
    if let Some(body_id) = params.get("client_id")
        && body_id != client_id
    {
        return Err(refuse(
            "client_id does not match the authenticated client",
            basic,
        ));
    }
    let Some(stored) = state.store.get_client(&client_id).await? else {
        return Err(refuse("unknown client or wrong secret", basic));
    };
    if stored.client.auth_method != method {
        return Err(refuse(
            &format!(
                "this client must authenticate with {}",
                stored.client.auth_method.as_str()
            ),
            basic,
        ));
    }
    if let Some(secret) = secret {
        let presented = hash_secret(&secret);
        let expected = stored.secret_hash.as_deref().unwrap_or_default();
        if !secrets_equal(presented.as_bytes(), expected.as_bytes()) {
            return Err(refuse("unknown client or wrong secret", basic));
        }
    }
    Ok(stored.client)
}
