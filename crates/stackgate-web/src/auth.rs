//! Who is calling: an API token (`Authorization: Bearer`) or a browser session cookie.

use crate::{error::ApiError, extract::client_ip, state::AppState};
use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
};
use axum_extra::extract::CookieJar;
use stackgate_identity::{Actor, User, hash_secret};
use stackgate_store::Session;

pub(crate) const SESSION_COOKIE_SECURE: &str = "__Host-stackgate_session";
pub(crate) const SESSION_COOKIE_PLAIN: &str = "stackgate_session";

pub(crate) fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() {
        SESSION_COOKIE_SECURE
    } else {
        SESSION_COOKIE_PLAIN
    }
}

/// The browser session named by the request's cookie, if live.
pub(crate) async fn session_from_cookies(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    session_from_jar(state, &CookieJar::from_headers(headers)).await
}

/// The browser session named by the jar's cookie, if live.
pub(crate) async fn session_from_jar(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = jar.get(session_cookie_name(state)) else {
        return Ok(None);
    };
    Ok(state
        .store
        .session_by_secret(
            &hash_secret(cookie.value()),
            state.settings().session_idle_timeout,
        )
        .await?)
}

/// The policy a session's sign-in must meet: the strictest of the global one and the user's
/// groups'.
pub(crate) fn required_policy(
    state: &AppState,
    session: &Session,
) -> stackgate_identity::MfaPolicy {
    state.settings().mfa_policy.max(session.group_mfa_policy)
}

/// Whether a session's methods meet its policy. One that does not (a user led through
/// enrolment at sign-in) reaches only their own sign-in methods page until it does.
pub(crate) fn meets_policy(state: &AppState, session: &Session) -> bool {
    required_policy(state, session).met_by(&session.amr)
}

/// Refuses a cookie-authenticated state change that a browser reports as coming from another
/// site. API tokens are not sent automatically by browsers, so they need no such check.
pub(crate) fn same_origin(state: &AppState, method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == state.config.origin(),
        // Browsers send Origin on every cross-origin state change; a request without one is
        // same-origin or not from a browser.
        None => true,
    }
}

/// An admin calling the admin API.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: User,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (user, is_admin) = if let Some(authorization) = authorization {
            let token = authorization
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .ok_or(ApiError::Unauthorized)?;
            let owner = state
                .store
                .authenticate_api_token(&hash_secret(token))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            (owner.user, owner.is_admin)
        } else {
            let session = session_from_cookies(state, &parts.headers)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            if !same_origin(state, &parts.method, &parts.headers) {
                return Err(ApiError::Forbidden(
                    "cross-site request refused: send it from Stackgate's own pages or with an API token".into(),
                ));
            }
            if !meets_policy(state, &session) {
                return Err(ApiError::Forbidden(
                    "your sign-in does not meet your organisation's policy: add the required second factor at /account/security".into(),
                ));
            }
            (session.user, session.is_admin)
        };
        if !is_admin {
            return Err(ApiError::Forbidden(
                "this needs an admin: ask an admin to add you to the admins group".into(),
            ));
        }
        let actor = Actor::user(user.id, &user.username, ip);
        Ok(Admin { user, actor })
    }
}
