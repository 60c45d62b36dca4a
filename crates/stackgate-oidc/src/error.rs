use thiserror::Error;

/// Protocol errors, each carrying the OAuth 2.0 / OpenID Connect error code it maps to.
#[derive(Debug, Error)]
pub enum OidcError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    UnsupportedResponseType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    LoginRequired(String),
    #[error("{0}")]
    ConsentRequired(String),
    #[error("{0}")]
    InvalidToken(String),
    /// A key could not be generated, sealed, opened or used.
    #[error("key error: {0}")]
    Key(String),
}

impl OidcError {
    /// The `error` value of the protocol response.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::InvalidRequest(_) => "invalid_request",
            OidcError::InvalidClient(_) => "invalid_client",
            OidcError::InvalidGrant(_) => "invalid_grant",
            OidcError::UnauthorizedClient(_) => "unauthorized_client",
            OidcError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OidcError::UnsupportedResponseType(_) => "unsupported_response_type",
            OidcError::InvalidScope(_) => "invalid_scope",
            OidcError::AccessDenied(_) => "access_denied",
            OidcError::LoginRequired(_) => "login_required",
            OidcError::ConsentRequired(_) => "consent_required",
            OidcError::InvalidToken(_) => "invalid_token",
            OidcError::Key(_) => "server_error",
        }
    }
}
