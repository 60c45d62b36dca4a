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
        let field = missing
            .or_else(|| (path != "." && !syntax).then_some(path))
            .map(|field| quoted(&field));
        let inner = quoted(&inner.to_string());
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
                let path = quoted(&path);
                ApiError::BadRequest {
                    detail: format!("query parameter {path}: {}", quoted(&inner.to_string())),
                    field: (path != ".").then_some(path),
                }
            })
    }
}

/// The most characters of a rejection's field, or of its reason, that are sent back.
const MAX_QUOTED_CHARS: usize = 200;

/// A rejection's field or reason, each of which may quote the input: serde names an unknown
/// field or variant whole, and a map's keys are part of a field's path. Bounded, so a
/// megabyte-long name is not sent back; control characters escaped, so a terminal or log
/// showing the message does not obey them.
fn quoted(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(MAX_QUOTED_CHARS));
    let mut count = 0;
    for c in text.chars() {
        // An escaped character counts as the characters that show it (`\u{1b}`: 6).
        let escaped = c.is_control().then(|| c.escape_default());
        let width = escaped.clone().map_or(1, Iterator::count);
        if count + width > MAX_QUOTED_CHARS {
            shown.push('…');
            break;
        }
        count += width;
        match escaped {
            Some(escaped) => shown.extend(escaped),
            None => shown.push(c),
        }
    }
    shown
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: std::collections::BTreeMap<String, u8>,
    }

    fn rejection(body: &str) -> (String, Option<String>) {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::BadRequest { detail, field }) => (detail, field),
            other => panic!("{body} gave {other:?}"),
        }
    }

    #[test]
    fn a_rejection_names_the_field() {
        let (detail, field) = rejection(r#"{"name": 1, "tags": {}}"#);
        assert_eq!(field.as_deref(), Some("name"));
        assert!(detail.starts_with("name: invalid type"), "{detail}");
        let (detail, field) = rejection(r#"{"tags": {}}"#);
        assert_eq!(field.as_deref(), Some("name"));
        assert!(detail.contains("missing field"), "{detail}");
    }

    #[test]
    fn a_rejection_quotes_no_control_character_and_no_more_than_it_must() {
        let long = "x".repeat(100_000);
        let (detail, field) = rejection(&format!(r#"{{"name": "a", "tags": {{}}, "{long}": 1}}"#));
        let field = field.expect("the unknown field is named");
        assert_eq!(field.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(field.ends_with('…'));
        assert!(
            detail.starts_with(&format!("{field}: unknown field `xxx")),
            "{detail}"
        );
        assert_eq!(detail.chars().count(), 2 * (MAX_QUOTED_CHARS + 1) + 2);

        // Found by the fuzz target `api_json`: escaped characters count as what shows them.
        let deletes = "\u{7f}".repeat(100);
        let (_, field) = rejection(&format!(
            r#"{{"name": "a", "tags": {{"{deletes}": "no"}}}}"#
        ));
        let field = field.expect("a map key is part of the path");
        assert!(field.chars().count() <= MAX_QUOTED_CHARS + 1, "{field}");
        assert!(field.ends_with('…'), "{field}");
        assert!(field.starts_with("tags.\\u{7f}\\u{7f}"), "{field}");

        let (detail, field) = rejection(r#"{"name": "a", "tags": {"\u001b[2J\nroot": "no"}}"#);
        let field = field.expect("a map key is part of the path");
        for text in [&detail, &field] {
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(text.contains("\\u{1b}[2J\\nroot"), "{text:?}");
        }
    }
}
