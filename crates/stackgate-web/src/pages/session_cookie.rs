//! Starting and ending the browser session behind the session cookie.

use super::setup::ClientInfo;
use crate::{auth::session_cookie_name, pages::PageError, state::AppState};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use stackgate_identity::{Actor, SecretToken, Target, User, Uuid};
use stackgate_store::{LoginFlow, NewSession};

/// Creates a session for `user` and returns the jar with its cookie. A new secret every time:
/// a session id planted before sign-in never becomes a signed-in one.
pub(crate) async fn start(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    amr: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<CookieJar, PageError> {
    // A browser holds one session: signing in again (prompt=login, max_age, another account)
    // ends the previous one everywhere first, so nothing of it outlives the new sign-in.
    if let Some(previous) = jar.get(session_cookie_name(state)) {
        let entry =
            Actor::user(user.id, &user.username, ip.clone()).entry("session.end", Target::System);
        crate::oidc::sign_off::end(
            state,
            stackgate_store::Sessions::BySecret(&stackgate_identity::hash_secret(previous.value())),
            "signed in again",
            &entry,
        )
        .await?;
    }
    let secret = SecretToken::generate("")?;
    let session = NewSession {
        id: Uuid::new_v4(),
        user_id: user.id,
        secret_hash: secret.hash,
        lifetime: state.settings().session_lifetime,
        amr: amr.to_owned(),
        ip: ip.clone(),
        user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
    };
    let entry = Actor::user(user.id, &user.username, ip)
        .entry(
            "session.create",
            Target::User {
                id: user.id,
                name: user.username.clone(),
            },
        )
        .with_detail(serde_json::json!({ "session": session.id, "amr": amr }));
    state.store.create_session(&session, &entry).await?;
    Ok(jar.add(cookie(state, secret.plaintext)))
}

/// Rotates the session's secret in place with the stronger `amr` just proven (enrolment at a
/// sign-in that needed it): a new cookie, the same session id, so apps stay signed in.
pub(crate) async fn step_up(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    amr: &str,
    ip: Option<String>,
) -> Result<CookieJar, PageError> {
    let Some(previous) = jar.get(session_cookie_name(state)) else {
        return Ok(jar);
    };
    let old_hash = stackgate_identity::hash_secret(previous.value());
    let secret = SecretToken::generate("")?;
    let entry = Actor::user(user.id, &user.username, ip)
        .entry(
            "session.step_up",
            Target::User {
                id: user.id,
                name: user.username.clone(),
            },
        )
        .with_detail(serde_json::json!({ "amr": amr }));
    if !state
        .store
        .step_up_session(&old_hash, &secret.hash, amr, &entry)
        .await?
    {
        return Ok(jar);
    }
    Ok(jar.add(cookie(state, secret.plaintext)))
}

/// Ends a second step that proved the methods `added`: in a new session, or, when the flow
/// steps up a session, in that one with the methods added (same id, new secret). Returns the
/// jar and the session's methods; no methods when the session to step up is no longer this
/// browser's live session of the same person, because such a flow proved only the added
/// factor, which never makes a session alone.
pub(crate) async fn after_flow(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    flow: &LoginFlow,
    added: &[&str],
    client: ClientInfo,
) -> Result<(CookieJar, Option<String>), PageError> {
    let Some(session_id) = flow.step_up_of else {
        let amr = with_methods(&flow.amr, added);
        let jar = start(state, jar, user, &amr, client.ip, client.user_agent).await?;
        return Ok((jar, Some(amr)));
    };
    let current = crate::auth::session_from_jar(state, &jar).await?;
    let Some(session) = current.filter(|s| s.id == session_id && s.user.id == user.id) else {
        return Ok((jar, None));
    };
    let amr = with_methods(&session.amr, added);
    let jar = step_up(state, jar, user, &amr, client.ip).await?;
    Ok((jar, Some(amr)))
}

/// The session cookie: HttpOnly, SameSite=Lax, and `Secure` with the `__Host-` prefix on HTTPS.
fn cookie(state: &AppState, secret: String) -> Cookie<'static> {
    Cookie::build((session_cookie_name(state), secret))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(state.settings().session_lifetime))
        .build()
}

/// `amr` with `methods` added once each, in order (RFC 8176 values are a set).
pub(crate) fn with_methods(amr: &str, methods: &[&str]) -> String {
    let mut all: Vec<&str> = amr.split_whitespace().collect();
    for method in methods {
        if !all.contains(method) {
            all.push(method);
        }
    }
    all.join(" ")
}
