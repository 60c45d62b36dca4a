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
