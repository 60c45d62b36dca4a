//! What every admin console page shares: who may see it, and how a refused change reads.

use super::{PageError, setup::ClientInfo};
use crate::{auth::session_from_cookies, csrf, error::ApiError, i18n::t, state::AppState};
use axum::{
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use stackgate_identity::Actor;
use stackgate_store::Session;

/// The signed-in admin, or where the browser goes instead (sign-in, or enrolment when the
/// session does not meet its policy). `return_to` is the page to come back to.
pub(super) async fn admin(
    state: &AppState,
    headers: &HeaderMap,
    return_to: &str,
) -> Result<Result<Session, Response>, PageError> {
    let Some(session) = session_from_cookies(state, headers).await? else {
        let back = super::safe_return_path(Some(return_to));
        let to = format!("/login?return_to={}", urlencode(&back));
        return Ok(Err(Redirect::to(&to).into_response()));
    };
    if !crate::auth::meets_policy(state, &session) {
        return Ok(Err(Redirect::to("/account/security").into_response()));
    }
    if !session.is_admin {
        return Err(PageError::Forbidden(t("admin-only")));
    }
    Ok(Ok(session))
}

/// An admin's form submission: signed in as an admin, with a valid CSRF token.
pub(super) async fn admin_form(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf_token: &str,
    client: &ClientInfo,
    return_to: &str,
) -> Result<Result<Actor, Response>, PageError> {
    let session = match admin(state, headers, return_to).await? {
        Ok(session) => session,
        Err(redirect) => return Ok(Err(redirect)),
    };
    if !csrf::verify(state, jar, headers, csrf_token) {
        return Err(PageError::forged_form());
    }
    Ok(Ok(Actor::user(
        session.user.id,
        &session.user.username,
        client.ip.clone(),
    )))
}

/// A refused change as the form shows it, or the error page for faults that are not the
/// admin's to fix.
pub(super) fn inline(err: ApiError) -> Result<String, PageError> {
    match err {
        ApiError::Unavailable(_) | ApiError::Internal(_) => Err(err.into()),
        other => Ok(other.problem().detail),
    }
}

pub(super) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A change that cannot be undone goes ahead only with its confirmation box ticked;
/// `refusal` says so otherwise (`admin-confirm-…`), made only when needed.
pub(super) fn confirmed(
    confirm: &Option<String>,
    refusal: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    match confirm {
        Some(_) => Ok(()),
        None => Err(ApiError::Invalid {
            field: "confirm".into(),
            detail: refusal(),
        }),
    }
}
