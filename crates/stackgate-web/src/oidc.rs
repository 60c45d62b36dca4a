//! The OpenID provider's HTTP endpoints: discovery, JWKS, authorization (with consent), token,
//! userinfo, introspection and revocation. Protocol rules live in `stackgate-oidc`; grants in the
//! store; this module speaks the protocol's HTTP and maps errors to the specs' responses.

pub(crate) mod authorize;
pub(crate) mod client_auth;
mod discovery;
pub(crate) mod end_session;
mod errors;
pub mod keyring;
pub(crate) mod params;
pub mod sign_off;
mod token;
mod tokens_issued;
pub(crate) mod userinfo;

use crate::state::AppState;
use axum::{
    Router,
    routing::{get, post},
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route("/jwks.json", get(discovery::jwks))
        .route(
            "/authorize",
            get(authorize::start).post(authorize::start_post),
        )
        .route("/authorize/consent", post(authorize::consent))
        .route("/token", post(token::exchange))
        .route("/userinfo", get(userinfo::get).post(userinfo::post))
        .route("/introspect", post(token::introspect))
        .route("/revoke", post(token::revoke))
        .route(
            "/end_session",
            get(end_session::start).post(end_session::start_post),
        )
        .route("/end_session/confirm", post(end_session::confirm))
}

/// How long an ID token is valid. Relying parties check it once, at sign-in.
pub(crate) const ID_TOKEN_LIFETIME: i64 = 3_600;
/// How long an authorization code is valid (RFC 6749 recommends at most 10 minutes).
pub(crate) const CODE_LIFETIME: i64 = 60;
