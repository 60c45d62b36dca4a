//! `/proxy/sign-in?rd=URL`: the login host's half of signing in to an app behind the edge proxy.
//! A person signed in here (strongly enough) is sent to the app's own host with a one-time code,
//! which the edge there exchanges for that host's cookie. The return URL must be on a host the
//! edge protects, so this page cannot be used to bounce people to other sites.

use super::PageError;
use crate::{
    auth::{meets_policy, session_from_cookies},
    i18n::t,
    state::AppState,
};
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use stackgate_identity::SecretToken;
use std::collections::HashMap;

/// Seconds a hand-over code lives: one redirect.
const CODE_LIFETIME: i64 = 60;

pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let Some(edge) = state.edge.get() else {
        return Err(PageError::NotFound);
    };
    let not_ours = || PageError::BadRequest(t("proxy-sign-in-not-ours"));
    let raw = params.get("rd").ok_or_else(not_ours)?;
    let url = url::Url::parse(raw).map_err(|_| not_ours())?;
    let host = edge.return_host(&url).ok_or_else(not_ours)?;
    // The digest of the app host's state cookie: the code will be honoured only there.
    let browser = params
        .get("state")
        .filter(|s| {
            s.len() == 43
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| PageError::BadRequest(t("proxy-sign-in-incomplete")))?;
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        let mut again = url::form_urlencoded::Serializer::new(String::new());
        again.append_pair("rd", url.as_str());
        again.append_pair("state", browser);
        let mut login = url::form_urlencoded::Serializer::new(String::new());
        login.append_pair("return_to", &format!("/proxy/sign-in?{}", again.finish()));
        return Ok(Redirect::to(&format!("/login?{}", login.finish())).into_response());
    };
    if !meets_policy(&state, &session) {
        return Err(PageError::Forbidden(t("proxy-sign-in-stronger")));
    }
    let code = SecretToken::generate("")?;
    state
        .store
        .issue_proxy_code(&code.hash, session.id, &host, browser, CODE_LIFETIME)
        .await?;
    let mut callback = url.clone();
    callback.set_path("/.stackgate/callback");
    let back = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    callback
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code.plaintext)
        .append_pair("rd", &back);
    callback.set_fragment(None);
    Ok(Redirect::to(callback.as_str()).into_response())
}

/// `/forward-auth`: an ingress asks whether a request may pass (see the edge's forward-auth).
pub(crate) async fn forward_auth(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.edge.get() {
        Some(edge) => edge.forward_auth(headers).await,
        None => PageError::NotFound.into_response(),
    }
}
