//! The landing page: who is signed in, and a way out.

use super::{PageError, render};
use crate::{auth::session_from_cookies, csrf, state::AppState};
use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    if !crate::auth::meets_policy(&state, &session) {
        return Ok(Redirect::to("/account/security").into_response());
    }
    let (jar, csrf) = csrf::issue(&state, jar)?;
    // The launcher: exactly the apps this person may reach, by the rule the apps apply.
    let apps = match state.apps.get() {
        Some(apps) => apps
            .launcher(session.user.username.clone(), session.groups.clone())
            .await
            .map_err(|e| PageError::Internal(e.to_string()))?,
        None => Vec::new(),
    };
    let page = render(
        &state,
        "home.html",
        minijinja::context! {
            csrf,
            apps,
            username => session.user.username,
            display_name => session.user.display_name,
            is_admin => session.is_admin,
        },
    )?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}
