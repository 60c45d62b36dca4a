//! Password sign-in and sign-out. The MFA issue replaces the second half of `submit` with its
//! method choice; the session it ends with is the same.

use super::{
    PageError, render, safe_return_path, second_factor, session_cookie, setup::ClientInfo,
};
use crate::{csrf, state::AppState};
use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{Actor, MfaPolicy, Target};

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
    /// From an app's `login_hint`: fills in the username.
    login_hint: Option<String>,
    /// From an app's `acr_values`: the level this sign-in must reach (`2`, `3`).
    acr: Option<String>,
}

#[derive(Serialize)]
struct LoginPage {
    csrf: String,
    username: String,
    return_to: String,
    acr: String,
    error: Option<&'static str>,
}

fn acr_param(raw: Option<&str>) -> String {
    match raw {
        Some(level @ ("2" | "3")) => level.to_owned(),
        _ => String::new(),
    }
}

pub(crate) async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = render(
        &state,
        "login.html",
        LoginPage {
            csrf,
            username: query
                .login_hint
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect(),
            return_to: safe_return_path(query.return_to.as_deref()),
            acr: acr_param(query.acr.as_deref()),
            error: None,
        },
    )?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    return_to: Option<String>,
    acr: Option<String>,
}

const WRONG: &str = "Wrong username or password.";

/// A wait in whole seconds, rounded up: a person told "1 second" who waits 1 s must not find
/// the door still shut.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The page shown while an account or address must wait before its next attempt.
pub(super) fn throttled_message(wait: std::time::Duration) -> String {
    let seconds = whole_seconds(wait);
    if seconds == 1 {
        "Too many failed attempts. Wait 1 second, then try again.".to_owned()
    } else if seconds < 90 {
        format!("Too many failed attempts. Wait {seconds} seconds, then try again.")
    } else {
        format!(
            "Too many failed attempts. Wait {} minutes, then try again.",
            seconds.div_ceil(60)
        )
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let return_to = safe_return_path(form.return_to.as_deref());
    if let Some(wait) = state.throttle.attempt(&form.username, client.ip.as_deref()) {
        // Answered before any password check, whether or not the account exists.
        let entry = Actor {
            source_ip: client.ip,
            ..Actor::system("login")
        }
        .entry("login.throttled", Target::System)
        .with_detail(
            serde_json::json!({ "username": form.username.chars().take(64).collect::<String>() }),
        );
        state.store.record(&entry).await?;
        let page = render(
            &state,
            "login.html",
            minijinja::context! {
                csrf => form.csrf,
                username => form.username,
                return_to,
                error => throttled_message(wait),
            },
        )?;
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::RETRY_AFTER, whole_seconds(wait).to_string()),
            ],
            page,
        )
            .into_response());
    }
    // One query: the user, their hash, their second factors and their groups' policy.
    let candidate = state.store.sign_in_candidate(&form.username).await?;
    // Unknown and disabled users are verified against a dummy hash: same time, same answer.
    let (found, stored) = match candidate {
        Some(c) if !c.user.disabled => {
            let hash = c.password_hash.clone();
            (Some(c), hash)
        }
        _ => (None, None),
    };
    let ok = state.hasher.verify(form.password, stored).await;
    match found.filter(|_| ok) {
        Some(candidate) => {
            let user = candidate.user;
            let factors = candidate.factors;
            let required = state
                .config
                .mfa_policy
                .max(candidate.group_policy)
                .max(MfaPolicy::from_acr(&acr_param(form.acr.as_deref())));
            // Anyone with a second factor proves it, whatever the policy: a password alone
            // never makes a session for them (not even one that may only enrol a factor).
            // Strikes are cleared only once every factor is proven: otherwise knowing the
            // password would reset the count of wrong second-factor codes.
            if factors.any() {
                state
                    .throttle
                    .passed_first_factor(&form.username, client.ip.as_deref());
                let jar =
                    second_factor::start(&state, jar, &user, "pwd", &return_to, required).await?;
                return Ok((jar, Redirect::to("/login/second-factor")).into_response());
            }
            state
                .throttle
                .succeeded(&form.username, client.ip.as_deref());
            let jar =
                session_cookie::start(&state, jar, &user, "pwd", client.ip, client.user_agent)
                    .await?;
            if required == MfaPolicy::Optional {
                return Ok((jar, Redirect::to(&return_to)).into_response());
            }
            // The policy asks for a factor this user does not have yet: they are signed in
            // only to add it (the session reaches nothing else until it meets the policy).
            let target = format!(
                "/account/security?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("required", required.as_str())
                    .append_pair("return_to", &return_to)
                    .finish()
            );
            Ok((jar, Redirect::to(&target)).into_response())
        }
        None => {
            let entry = Actor { source_ip: client.ip, ..Actor::system("login") }
                .entry("login.failure", Target::System)
                .with_detail(serde_json::json!({ "username": form.username.chars().take(64).collect::<String>() }));
            state.store.record(&entry).await?;
            let page = render(
                &state,
                "login.html",
                LoginPage {
                    csrf: form.csrf,
                    username: form.username,
                    return_to,
                    acr: acr_param(form.acr.as_deref()),
                    error: Some(WRONG),
                },
            )?;
            Ok((
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store")],
                page,
            )
                .into_response())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    csrf: String,
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    _client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    Ok(crate::oidc::end_session::sign_out(&state, &headers, jar, None).await)
}

/// "Sign out everywhere": every session of this user, on every device, and in every app.
pub(crate) async fn logout_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    Ok(crate::oidc::end_session::sign_out_everywhere(&state, &headers, jar).await)
}

#[cfg(test)]
mod wait_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_are_rounded_up_never_down() {
        assert_eq!(whole_seconds(Duration::from_millis(1900)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert!(throttled_message(Duration::from_millis(1900)).contains("Wait 2 seconds"));
        assert!(throttled_message(Duration::from_millis(400)).contains("Wait 1 second,"));
    }
}
