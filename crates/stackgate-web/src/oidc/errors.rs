//! Protocol error responses: JSON for the token, introspection and revocation endpoints
//! (RFC 6749 §5.2), `WWW-Authenticate` for bearer errors (RFC 6750 §3).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use stackgate_oidc::OidcError;
use stackgate_store::StoreError;

/// An error answered as `{"error": ..., "error_description": ...}`.
#[derive(Debug)]
pub(crate) enum OAuthError {
    Protocol(OidcError),
    /// Client authentication failed; `basic` when the client tried HTTP Basic.
    Client {
        description: String,
        basic: bool,
    },
    Unavailable(String),
    Internal(String),
}

impl From<OidcError> for OAuthError {
    fn from(err: OidcError) -> Self {
        match err {
            OidcError::Key(cause) => OAuthError::Internal(cause),
            other => OAuthError::Protocol(other),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            OAuthError::Unavailable(err.to_string())
        } else {
            OAuthError::Internal(err.to_string())
        }
    }
}

impl From<stackgate_identity::IdentityError> for OAuthError {
    fn from(err: stackgate_identity::IdentityError) -> Self {
        OAuthError::Internal(err.to_string())
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code, description) = match &self {
            OAuthError::Protocol(err) => (StatusCode::BAD_REQUEST, err.code(), err.to_string()),
            OAuthError::Client { description, .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                description.clone(),
            ),
            OAuthError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "try again shortly".into(),
                )
            }
            OAuthError::Internal(cause) => {
                tracing::error!(%cause, "protocol request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "an internal error was logged".into(),
                )
            }
        };
        let mut response = (
            status,
            Json(serde_json::json!({ "error": code, "error_description": description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let OAuthError::Client { basic: true, .. } = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"stackgate\""),
            );
        }
        response
    }
}

/// A refused bearer token (RFC 6750 §3.1).
pub(crate) fn bearer_error(status: StatusCode, code: &str, description: &str) -> Response {
    let challenge = format!(
        "Bearer realm=\"stackgate\", error=\"{code}\", error_description=\"{description}\""
    );
    let mut response = (
        status,
        Json(serde_json::json!({ "error": code, "error_description": description })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
