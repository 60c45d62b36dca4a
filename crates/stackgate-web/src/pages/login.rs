//! Sign-in, username first, then the account's methods; the password step; stepping up a
//! session an app finds too weak; and sign-out.

use super::{
    PageError, render, safe_return_path, second_factor, session_cookie,
    setup::ClientInfo,
    sign_in_methods::{self, Methods},
};
use crate::{
    csrf,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{Actor, MfaPolicy, Target};
use stackgate_store::{LoginFlow, Session};

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
    /// From an app's `login_hint`: fills in the username.
    login_hint: Option<String>,
    /// From an app's `acr_values`: the level this sign-in must reach (`2`, `3`).
    acr: Option<String>,
    /// Set when the app asked for a new sign-in (`prompt=login`, `max_age`): a session is not
    /// stepped up then, the person signs in from the start.
    reauth: Option<String>,
}

#[derive(Serialize)]
struct LoginPage {
    csrf: String,
    username: String,
    return_to: String,
    acr: String,
    /// `None` on the first step (the username); then what this account signs in with.
    methods: Option<Methods>,
    /// The query that starts over ("Not you?") with the same app and level.
    restart: String,
    error: Option<String>,
}

impl LoginPage {
    fn new(csrf: String, username: &str, return_to: String, acr: String) -> Self {
        let mut restart = url::form_urlencoded::Serializer::new(String::new());
        restart.append_pair("return_to", &return_to);
        if !acr.is_empty() {
            restart.append_pair("acr", &acr);
        }
        Self {
            csrf,
            username: username.trim().chars().take(64).collect(),
            return_to,
            acr,
            methods: None,
            restart: restart.finish(),
            error: None,
        }
    }
}

fn acr_param(raw: Option<&str>) -> String {
    match raw {
        Some(level @ ("2" | "3")) => level.to_owned(),
        _ => String::new(),
    }
}

/// The sign-in page: the username first, or, with an app's `login_hint`, straight to the
/// methods of that account.
pub(crate) async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let acr = acr_param(query.acr.as_deref());
    let return_to = safe_return_path(query.return_to.as_deref());
    let asked = MfaPolicy::from_acr(&acr);
    if query.reauth.is_none()
        && asked != MfaPolicy::Optional
        && let Some(session) = crate::auth::session_from_jar(&state, &jar).await?
        && !asked.met_by(&session.amr)
    {
        return step_up(&state, jar, session, asked, return_to).await;
    }
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let hint = query.login_hint.unwrap_or_default();
    let mut page = LoginPage::new(csrf, &hint, return_to, acr);
    if !page.username.is_empty() {
        page.methods = Some(sign_in_methods::of(&state, &page.username).await?);
    }
    let page = render(&state, "login.html", page)?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct IdentifyForm {
    csrf: String,
    username: String,
    return_to: Option<String>,
    acr: Option<String>,
}

/// The first step's answer: the methods this username signs in with (a decoy for a name that
/// is no account, so the step tells nobody which accounts exist).
pub(crate) async fn identify(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<IdentifyForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let mut page = LoginPage::new(
        form.csrf,
        &form.username,
        safe_return_path(form.return_to.as_deref()),
        acr_param(form.acr.as_deref()),
    );
    if page.username.is_empty() {
        page.error = Some(t("login-enter-username"));
        let page = render(&state, "login.html", page)?;
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CACHE_CONTROL, "no-store")],
            page,
        )
            .into_response());
    }
    page.methods = Some(sign_in_methods::of(&state, &page.username).await?);
    let page = render(&state, "login.html", page)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], page).into_response())
}

/// An app asks for a stronger sign-in than the browser's session has: the person proves the
/// missing factor and the same session carries it (same id, new secret), so the apps it
/// reaches stay signed in. Without such a factor they are shown how to add one.
async fn step_up(
    state: &AppState,
    jar: CookieJar,
    session: Session,
    asked: MfaPolicy,
    return_to: String,
) -> Result<Response, PageError> {
    let factors = state.store.second_factors(session.user.id).await?;
    let has_keys = state.webauthn.is_some() && factors.security_keys + factors.passkeys > 0;
    let can_prove = match asked {
        MfaPolicy::PhishingResistant => has_keys,
        _ => has_keys || factors.totp || factors.recovery_codes_left > 0,
    };
    if !can_prove {
        let target = format!("/account/security?needed={}", asked.as_str());
        return Ok(Redirect::to(&target).into_response());
    }
    let flow = LoginFlow {
        user_id: session.user.id,
        amr: session.amr,
        return_to,
        failures: 0,
        required: asked,
        step_up_of: Some(session.id),
    };
    let jar = second_factor::start(state, jar, &flow).await?;
    Ok((jar, Redirect::to("/login/second-factor")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    return_to: Option<String>,
    acr: Option<String>,
}

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
    if seconds < 90 {
        t_args("login-throttled", &[("seconds", seconds.into())])
    } else {
        t_args(
            "login-throttled-minutes",
            &[("minutes", seconds.div_ceil(60).into())],
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
        let mut page = LoginPage::new(
            form.csrf,
            &form.username,
            return_to,
            acr_param(form.acr.as_deref()),
        );
        page.methods = Some(sign_in_methods::of(&state, &page.username).await?);
        page.error = Some(throttled_message(wait));
        let page = render(&state, "login.html", page)?;
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
    let methods = sign_in_methods::for_candidate(&state, &form.username, candidate.as_ref());
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
                let flow = LoginFlow {
                    user_id: user.id,
                    amr: "pwd".into(),
                    return_to: return_to.clone(),
                    failures: 0,
                    required,
                    step_up_of: None,
                };
                let jar = second_factor::start(&state, jar, &flow).await?;
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
            let mut page = LoginPage::new(
                form.csrf,
                &form.username,
                return_to,
                acr_param(form.acr.as_deref()),
            );
            page.methods = Some(methods);
            page.error = Some(t("login-wrong"));
            let page = render(&state, "login.html", page)?;
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
