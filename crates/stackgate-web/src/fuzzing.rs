//! Entry points for the fuzz targets in `tests/fuzz`: parsers of outside input that are
//! otherwise reached only through HTTP handlers. Not an API.

use crate::oidc::{authorize, client_auth, params::Params, userinfo};
use axum::http::{HeaderMap, HeaderValue, header};
use stackgate_oidc::{Client, OidcError};

/// An authorization request's query, parsed and checked against `client` as `/authorize`
/// does before anything is stored or shown.
pub fn authorization_request(query: &[u8], client: &Client) -> Result<(), OidcError> {
    let params = Params::parse(query)?;
    authorize::check_request(&params, client).map(|_| ())
}

/// A token request's form body, parsed as the token endpoint does.
pub fn token_request(body: &[u8]) -> Result<Option<String>, OidcError> {
    let params = Params::parse(body)?;
    Ok(params.get("grant_type").map(str::to_owned))
}

/// What `Authorization: Basic` carries: none, an undecodable value, or `(client_id, secret)`.
pub type BasicCredentials = Option<Result<(String, String), ()>>;

/// The client credentials and bearer token an `Authorization` header value carries.
pub fn authorization_header(value: &[u8]) -> (BasicCredentials, Option<String>) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(header::AUTHORIZATION, value);
    }
    (
        client_auth::basic_credentials(&headers),
        userinfo::bearer(&headers),
    )
}

/// The subject a client assertion claims, read before its signature is checked (to find the
/// client's keys).
pub fn client_assertion_subject(assertion: &str) -> Option<String> {
    client_auth::unverified_subject(assertion)
}

/// The sign-in session's cookie value as the pages read it (plain-HTTP and `__Host-` names).
pub fn session_cookie(headers: &HeaderMap) -> Vec<String> {
    let jar = axum_extra::extract::CookieJar::from_headers(headers);
    [
        crate::auth::SESSION_COOKIE_PLAIN,
        crate::auth::SESSION_COOKIE_SECURE,
    ]
    .into_iter()
    .filter_map(|name| jar.get(name).map(|c| c.value().to_owned()))
    .collect()
}

/// The names of the API's JSON bodies, in the order [`api_body`] takes them.
pub const API_BODIES: &[&str] = crate::api::BODIES;

/// The API's JSON body `API_BODIES[kind % len]`, parsed as its handler parses it; a rejection
/// as the problem document's `(detail, field)`.
pub fn api_body(kind: usize, body: &[u8]) -> Result<(), (String, Option<String>)> {
    crate::api::parse_body(kind, body).map_err(|e| {
        let problem = e.problem();
        (problem.detail, problem.field)
    })
}

/// Where the sign-in pages send a person back to after signing in, given the `return_to` they
/// were sent.
pub fn return_path(raw: &str) -> String {
    crate::pages::safe_return_path(Some(raw))
}

/// The admin settings form, a `multipart/form-data` body with `boundary`, read and checked
/// as saving it does: the rows it would store, or why it is refused. Checked against the
/// settings of a default configuration, with passkeys available.
pub fn settings_form(
    boundary: &str,
    body: Vec<u8>,
) -> Result<Vec<(&'static str, Option<String>)>, String> {
    let current = crate::settings::LiveSettings::from_config(&config()).get();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(crate::pages::checked_settings_form(
        &format!("multipart/form-data; boundary={boundary}"),
        body,
        &current,
    ))
}

/// The issuer the targets run as.
pub const ISSUER: &str = "https://sso.example.org";

/// A configuration as the binary would build it for [`ISSUER`], with its defaults.
fn config() -> crate::WebConfig {
    crate::WebConfig {
        issuer: ISSUER.into(),
        origin: ISSUER.into(),
        organisation_name: "Example".into(),
        logo: None,
        brand_colour: None,
        session_idle_timeout: 8 * 3600,
        session_lifetime: 7 * 24 * 3600,
        mfa_policy: stackgate_identity::MfaPolicy::Optional,
        invitation_lifetime: 7 * 24 * 3600,
        password_reset_lifetime: 3600,
    }
}

/// The WebAuthn relying party Stackgate configures for [`ISSUER`].
pub fn relying_party() -> Result<webauthn_rs::Webauthn, String> {
    config().webauthn()
}

/// A passkey registration answer checked against the ceremony's state as saved between the
/// two calls (JSON); if accepted, the id the store files the passkey under and its record.
pub fn register_passkey(
    webauthn: &webauthn_rs::Webauthn,
    saved_state: &serde_json::Value,
    credential: &webauthn_rs::prelude::RegisterPublicKeyCredential,
) -> Result<(String, String), String> {
    crate::pages::webauthn_fuzzing::register_passkey(webauthn, saved_state, credential)
}

/// A passkey sign-in answer checked as the sign-in page checks it; `stored` stands for the
/// store (a credential id to its owner and record). If accepted: the owner, and the record to
/// store back if it changed.
pub fn sign_in_with_passkey(
    webauthn: &webauthn_rs::Webauthn,
    saved_state: serde_json::Value,
    credential: &webauthn_rs::prelude::PublicKeyCredential,
    stored: impl Fn(&str) -> Option<(stackgate_identity::Uuid, String)>,
) -> Result<(stackgate_identity::Uuid, Option<String>), String> {
    crate::pages::webauthn_fuzzing::sign_in_with_passkey(webauthn, saved_state, credential, stored)
}
