//! The UserInfo endpoint (OpenID Connect Core §5.3): GET or POST, with a bearer access token.

use super::{
    errors::bearer_error, params::Params, token::decode_access_token, tokens_issued::user_claims,
};
use crate::state::AppState;
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use stackgate_oidc::Scopes;

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub(crate) async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(&state, bearer(&headers)).await
}

/// POST may carry the token in the body (RFC 6750 §2.2) instead of the header.
pub(crate) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = match bearer(&headers) {
        Some(token) => Some(token),
        None => Params::parse(&body)
            .ok()
            .and_then(|p| p.get("access_token").map(str::to_owned)),
    };
    answer(&state, token).await
}

async fn answer(state: &AppState, token: Option<String>) -> Response {
    let Some(token) = token else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stackgate\""),
        );
        return response;
    };
    let invalid = || {
        bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid, expired or revoked",
        )
    };
    let Some(claims) = decode_access_token(state, &token).await else {
        return invalid();
    };
    let active = match state.store.active_access_token(&claims.jti).await {
        Ok(Some(active)) => active,
        Ok(None) => return invalid(),
        Err(err) => return super::errors::OAuthError::from(err).into_response(),
    };
    let scopes = Scopes::granted(&active.grant.scope);
    if !scopes.contains("openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the openid scope is required",
        );
    }
    let Ok(Some(user_id)) = active.grant.user() else {
        return invalid();
    };
    let user = match state.store.get_user(user_id).await {
        Ok(user) if !user.disabled => user,
        _ => return invalid(),
    };
    let groups: Vec<String> = match state.store.groups_of(user.id).await {
        Ok(groups) => groups.into_iter().map(|g| g.name).collect(),
        Err(err) => return super::errors::OAuthError::from(err).into_response(),
    };
    let client = match state.store.get_client(&active.grant.client_id).await {
        Ok(Some(stored)) => stored.client,
        Ok(None) => return invalid(),
        Err(err) => return super::errors::OAuthError::from(err).into_response(),
    };
    if super::tokens_issued::may_use(&client, &user, &groups).is_err() {
        return invalid();
    }
    let mut body =
        serde_json::to_value(user_claims(&user, &groups, &scopes, &client)).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("sub".into(), serde_json::Value::String(user.id.to_string()));
    }
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
