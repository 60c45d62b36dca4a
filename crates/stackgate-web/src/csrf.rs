//! CSRF protection for forms: a random value in a cookie that also travels in the form
//! (double submit), compared in constant time, plus the browser's own origin signals.

use crate::{auth::same_origin, state::AppState};
use axum::http::{HeaderMap, Method};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use stackgate_identity::{random_bytes, secrets_equal};

const COOKIE_SECURE: &str = "__Host-stackgate_csrf";
const COOKIE_PLAIN: &str = "stackgate_csrf";

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() {
        COOKIE_SECURE
    } else {
        COOKIE_PLAIN
    }
}

/// Returns the form token to embed, setting the cookie when the browser has none yet.
pub(crate) fn issue(
    state: &AppState,
    jar: CookieJar,
) -> Result<(CookieJar, String), stackgate_identity::IdentityError> {
    if let Some(existing) = jar.get(cookie_name(state))
        && existing.value().len() == 43
    {
        let value = existing.value().to_owned();
        return Ok((jar, value));
    }
    let value = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let cookie = Cookie::build((cookie_name(state), value.clone()))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Strict)
        .build();
    Ok((jar.add(cookie), value))
}

/// Whether a submitted form carries the browser's own token and was not sent from another site.
pub(crate) fn verify(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    submitted: &str,
) -> bool {
    let Some(cookie) = jar.get(cookie_name(state)) else {
        return false;
    };
    !submitted.is_empty()
        && secrets_equal(cookie.value().as_bytes(), submitted.as_bytes())
        && same_origin(state, &Method::POST, headers)
}
