//! Extractors whose rejections are problem documents naming the offending field.

use crate::error::ApiError;
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// Reads a JSON body with serde, naming the field a bad value sits in.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || v.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                detail: e.body_text(),
                field: None,
            })?;
        parse_json(&body).map(ApiJson)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error is about the text, not a field, even if it happens inside one.
        let syntax = inner.is_syntax() || inner.is_eof();
        // serde reports a missing field at the parent's path; name the field itself.
        let missing = inner
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            });
        let field = missing.or_else(|| (path != "." && !syntax).then_some(path));
        let detail = match &field {
            Some(field) if !syntax => format!("{field}: {inner}"),
            _ => format!("malformed JSON: {inner}"),
        };
        ApiError::BadRequest { detail, field }
    })?;
    de.end().map_err(|e| ApiError::BadRequest {
        detail: format!("malformed JSON: {e}"),
        field: None,
    })?;
    Ok(value)
}

/// Reads the query string, naming the parameter a bad value sits in.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                ApiError::BadRequest {
                    detail: format!("query parameter {path}: {inner}"),
                    field: (path != ".").then_some(path),
                }
            })
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

/// The peer's address, when the server was started with connection info.
pub(crate) fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}
