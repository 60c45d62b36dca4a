//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). A request the session can be
//! tied to (an ID token of this session) signs out at once; any other asks the person first,
//! so a link on another site cannot sign anyone out silently.

use super::{params::Params, sign_off};
use crate::{
    auth::{session_cookie_name, session_from_cookies},
    csrf,
    i18n::t,
    pages::{PageError, render},
    state::AppState,
};
use axum::{
    Form,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Uri, header},
    response::{IntoResponse, Response},
};
use axum_extra::extract::{CookieJar, cookie::Cookie};
use serde::Deserialize;
use stackgate_identity::{Actor, Target, hash_secret};
use stackgate_oidc::{IdTokenClaims, redirect_uri_matches, verify};
use stackgate_store::Sessions;

pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    uri: Uri,
) -> Response {
    request(
        &state,
        &headers,
        jar,
        Params::parse(uri.query().unwrap_or_default().as_bytes()),
    )
    .await
}

/// A cross-site form POST arrives without the (SameSite=Lax) session cookie: answering it would
/// claim a sign-out that did not happen. Such requests are sent on as a GET, which carries it.
pub(crate) async fn start_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    if jar.get(session_cookie_name(&state)).is_none() {
        return axum::response::Redirect::to(&format!(
            "/end_session?{}",
            String::from_utf8_lossy(&body)
        ))
        .into_response();
    }
    request(&state, &headers, jar, Params::parse(&body)).await
}

/// Where to send the person afterwards, if the app may have them back.
pub(crate) struct Return {
    uri: String,
    state: Option<String>,
}

async fn request(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, stackgate_oidc::OidcError>,
) -> Response {
    let Ok(params) = params else {
        return PageError::BadRequest(t("end-session-malformed")).into_response();
    };
    // The ID token hint names the app and the session; expired hints are fine (§2).
    let hint: Option<IdTokenClaims> = match params.get("id_token_hint") {
        Some(token) => match verify(
            &state.keyring.keys_for(token).await.keyset,
            token,
            "JWT",
            &state.config.issuer,
            None,
        ) {
            Ok(claims) => Some(claims),
            Err(_) => {
                return PageError::BadRequest(t("end-session-unverified-hint")).into_response();
            }
        },
        None => None,
    };
    let client_id = match (
        params.get("client_id"),
        hint.as_ref().map(|h| h.aud.as_str()),
    ) {
        (Some(a), Some(b)) if a != b => {
            return PageError::BadRequest(t("end-session-two-apps")).into_response();
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let back = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => state.store.get_client(id).await.ok().flatten(),
                None => None,
            };
            match client {
                Some(stored)
                    if redirect_uri_matches(&stored.client.post_logout_redirect_uris, uri) =>
                {
                    Some(Return {
                        uri: uri.to_owned(),
                        state: params.get("state").map(str::to_owned),
                    })
                }
                _ => {
                    return PageError::BadRequest(t("end-session-unregistered-return"))
                        .into_response();
                }
            }
        }
    };
    let session = match session_from_cookies(state, headers).await {
        Ok(session) => session,
        Err(err) => return PageError::from(err).into_response(),
    };
    let Some(session) = session else {
        return signed_out(state, jar, &stackgate_store::SignedOff::default(), back);
    };
    let tied = hint
        .as_ref()
        .is_some_and(|h| h.sid == session.id.to_string() && h.sub == session.user.id.to_string());
    if tied {
        return sign_out(state, headers, jar, back).await;
    }
    let Ok((jar, csrf)) = csrf::issue(state, jar) else {
        return PageError::Internal("csrf".into()).into_response();
    };
    let page = render(
        state,
        "confirm_sign_out.html",
        minijinja::context! {
            csrf,
            request => confirmation_request(&params, client_id.as_deref()),
            username => session.user.username,
        },
    );
    match page {
        Ok(page) => (jar, [(header::CACHE_CONTROL, "no-store")], page).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The request to carry through the confirmation page, naming the app even when only the ID
/// token hint did (so the return address can still be checked against it afterwards).
fn confirmation_request(params: &Params, client_id: Option<&str>) -> String {
    let mut encoded = params.encode_without(&["id_token_hint", "client_id"]);
    if let Some(id) = client_id {
        let pair = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", id)
            .finish();
        if !encoded.is_empty() {
            encoded.push('&');
        }
        encoded.push_str(&pair);
    }
    encoded
}

#[derive(Deserialize)]
pub(crate) struct Confirm {
    csrf: String,
    request: String,
}

/// The person confirmed: sign out, then continue as the original request asked.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<Confirm>,
) -> Response {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return PageError::Forbidden(t("end-session-forged-form")).into_response();
    }
    let params = Params::parse(form.request.as_bytes());
    let back = match &params {
        Ok(p) => match (p.get("post_logout_redirect_uri"), p.get("client_id")) {
            (Some(uri), Some(id)) => match state.store.get_client(id).await {
                Ok(Some(stored))
                    if redirect_uri_matches(&stored.client.post_logout_redirect_uris, uri) =>
                {
                    Some(Return {
                        uri: uri.to_owned(),
                        state: p.get("state").map(str::to_owned),
                    })
                }
                _ => None,
            },
            _ => None,
        },
        Err(_) => None,
    };
    sign_out(&state, &headers, jar, back).await
}

/// Ends this browser's session everywhere, and shows the signed-out page.
pub(crate) async fn sign_out(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    back: Option<Return>,
) -> Response {
    let name = session_cookie_name(state);
    let Some(cookie) = jar.get(name) else {
        return signed_out(state, jar, &stackgate_store::SignedOff::default(), back);
    };
    let actor = match session_from_cookies(state, headers).await {
        Ok(Some(session)) => Actor::user(session.user.id, &session.user.username, None),
        _ => Actor::system("sign-out"),
    };
    let hash = hash_secret(cookie.value());
    let result = sign_off::end(
        state,
        Sessions::BySecret(&hash),
        "user signed out",
        &actor.entry("session.end", Target::System),
    )
    .await;
    let jar = jar.remove(Cookie::build(name).path("/"));
    match result {
        Ok(signed_off) => signed_out(state, jar, &signed_off, back),
        Err(err) => PageError::from(err).into_response(),
    }
}

/// Ends every session of the signed-in user (every browser and device), with the same fan-out
/// to apps as a single sign-out, and shows the signed-out page.
pub(crate) async fn sign_out_everywhere(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
) -> Response {
    let session = match session_from_cookies(state, headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return axum::response::Redirect::to("/login").into_response(),
        Err(err) => return PageError::from(err).into_response(),
    };
    let user = &session.user;
    let entry = Actor::user(user.id, &user.username, None).entry(
        "user.sign_out",
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    );
    let result = sign_off::end(
        state,
        Sessions::OfUser(user.id),
        "user signed out everywhere",
        &entry,
    )
    .await;
    let jar = jar.remove(Cookie::build(session_cookie_name(state)).path("/"));
    match result {
        Ok(signed_off) => signed_out(state, jar, &signed_off, None),
        Err(err) => PageError::from(err).into_response(),
    }
}

fn signed_out(
    state: &AppState,
    jar: CookieJar,
    signed_off: &stackgate_store::SignedOff,
    back: Option<Return>,
) -> Response {
    let continue_to = back.map(|b| {
        let mut url = url::Url::parse(&b.uri).ok();
        if let (Some(url), Some(s)) = (url.as_mut(), b.state.as_deref()) {
            url.query_pairs_mut().append_pair("state", s);
        }
        url.map(|u| u.to_string()).unwrap_or(b.uri)
    });
    let frames = sign_off::front_channel_urls(state, signed_off);
    // The page's own policy: the usual one, plus frames from exactly these apps' origins.
    let origins: Vec<String> = frames
        .iter()
        .filter_map(|f| url::Url::parse(f).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    let frame_src = if origins.is_empty() {
        "'none'".to_owned()
    } else {
        origins.join(" ")
    };
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; frame-src {frame_src}"
    );
    let page = render(
        state,
        "signed_out.html",
        minijinja::context! { frames, continue_to },
    );
    match page {
        Ok(page) => (
            jar,
            [
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::CONTENT_SECURITY_POLICY, csp),
            ],
            page,
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}
