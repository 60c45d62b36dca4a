//! `/account/sessions`: where a person is signed in, and a way to end one of those sessions
//! (a laptop left somewhere) or all of them.

use super::{PageError, admin_users::session_rows, render, setup::ClientInfo};
use crate::{auth::session_from_cookies, csrf, state::AppState};
use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use stackgate_identity::{Actor, Target, Uuid};
use stackgate_store::Sessions;

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        return Ok(Redirect::to("/login?return_to=/account/sessions").into_response());
    };
    let sessions = session_rows(
        state
            .store
            .sessions_of(session.user.id, state.settings().session_idle_timeout)
            .await?,
    );
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = render(
        &state,
        "account_sessions.html",
        minijinja::context! {
            csrf, sessions,
            current => session.id.to_string(),
            username => session.user.username,
        },
    )?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct EndForm {
    csrf: String,
}

pub(crate) async fn end(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
    Form(form): Form<EndForm>,
) -> Result<Response, PageError> {
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        return Ok(Redirect::to("/login?return_to=/account/sessions").into_response());
    };
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    if id == session.id {
        // This browser's own session: the usual sign-out, which also clears the cookie.
        return Ok(crate::oidc::end_session::sign_out(&state, &headers, jar, None).await);
    }
    let user = &session.user;
    let entry = Actor::user(user.id, &user.username, client.ip).entry(
        "session.end",
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    );
    // Only the person's own sessions match; another id ends nothing.
    crate::oidc::sign_off::end(
        &state,
        Sessions::OneOf { user: user.id, id },
        "signed out from another device",
        &entry,
    )
    .await?;
    Ok(Redirect::to("/account/sessions").into_response())
}
