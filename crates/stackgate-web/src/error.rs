//! API errors as RFC 9457 problem documents. 5xx responses carry no internals (the cause is
//! logged here, once), but for `Incomplete`: a change done in part names, for the admin, what it
//! could not do (objects and files left, never a secret).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use stackgate_identity::IdentityError;
use stackgate_store::StoreError;
use thiserror::Error;
use utoipa::ToSchema;

#[derive(Debug, Error)]
pub enum ApiError {
    /// The request could not be read (malformed JSON, wrong type, unknown field).
    #[error("{detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    /// The request was read but a value is not acceptable.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database is unreachable; the cause is logged, not sent.
    #[error("service unavailable")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, not sent.
    #[error("internal error")]
    Internal(String),
    /// The request was carried out only in part; what is left undone is sent (and logged), for
    /// the admin to finish by hand.
    #[error("{0}")]
    Incomplete(String),
}

/// A problem document (RFC 9457), with Stackgate's `field` extension naming the offending input.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:stackgate:problem:conflict`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field the problem is about, as a JSON path (`email`, `groups[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::Incomplete(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad-request",
            ApiError::Invalid { .. } => "invalid-value",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
            ApiError::Incomplete(_) => "incomplete",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (detail, field) = match self {
            ApiError::BadRequest { detail, field } | ApiError::Conflict { detail, field } => {
                (detail.clone(), field.clone())
            }
            ApiError::Invalid { field, detail } => (detail.clone(), Some(field.clone())),
            ApiError::Unauthorized => (
                "sign in, or send an API token as `Authorization: Bearer <token>`".into(),
                None,
            ),
            ApiError::Unavailable(_) => (
                "the database is not reachable right now; try again shortly".into(),
                None,
            ),
            ApiError::Internal(_) => (
                "something went wrong on our side; it has been logged".into(),
                None,
            ),
            other => (other.to_string(), None),
        };
        Problem {
            kind: format!("urn:stackgate:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Incomplete(left) => tracing::error!(%left, "request done in part"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let mut response = (self.status(), Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stackgate\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { field, message } => ApiError::Conflict {
                detail: message,
                field: Some(field.to_owned()),
            },
            StoreError::NotFound(what) => ApiError::NotFound(what.to_owned()),
            StoreError::Refused(detail) => ApiError::Conflict {
                detail,
                field: None,
            },
            other if other.is_unavailable() => ApiError::Unavailable(other.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::Invalid { field, message } => ApiError::Invalid {
                field: field.to_owned(),
                detail: message,
            },
            IdentityError::WeakPassword(weakness) => ApiError::Invalid {
                field: "password".into(),
                detail: weakness.to_string(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}
