//! The second step of a sign-in: an authenticator-app code or a recovery code, for a person who
//! passed the password step. Between the two steps the browser holds only a short-lived,
//! random flow cookie; the session starts (with a new id) once both factors are proven.

use super::{PageError, login::throttled_message, render, session_cookie, setup::ClientInfo};
use crate::{csrf, i18n::t, state::AppState};
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use serde::Deserialize;
use stackgate_identity::{
    Actor, MfaPolicy, SecretToken, Target, User, hash_secret, recovery_code_digest, totp_step,
};
use stackgate_store::LoginFlow;

/// Seconds a person has between the password and the second factor.
const FLOW_LIFETIME: i64 = 600;
/// Wrong codes one flow tolerates before the person must start over with the password.
pub(super) const FLOW_ATTEMPTS: i64 = 5;

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() {
        "__Host-stackgate_login"
    } else {
        "stackgate_login"
    }
}

pub(super) use crate::oidc::keyring::totp_label;

/// Records a sign-in that passed `flow.amr` (or a session that asks to step up) and hands the
/// browser the flow cookie.
pub(super) async fn start(
    state: &AppState,
    jar: CookieJar,
    flow: &LoginFlow,
) -> Result<CookieJar, PageError> {
    let secret = SecretToken::generate("")?;
    state
        .store
        .start_login_flow(&secret.hash, flow, FLOW_LIFETIME)
        .await?;
    let cookie = Cookie::build((cookie_name(state), secret.plaintext))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(FLOW_LIFETIME))
        .build();
    Ok(jar.add(cookie))
}

/// Drops the flow cookie once the flow is done.
pub(super) fn forget_flow(state: &AppState, jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(cookie_name(state)).path("/"))
}

pub(super) async fn current_flow(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(String, LoginFlow)>, PageError> {
    let Some(cookie) = jar.get(cookie_name(state)) else {
        return Ok(None);
    };
    let hash = hash_secret(cookie.value());
    Ok(state
        .store
        .login_flow(&hash)
        .await?
        .map(|flow| (hash, flow)))
}

fn page(
    state: &AppState,
    csrf: String,
    factors: stackgate_store::SecondFactors,
    flow: &LoginFlow,
    error: Option<String>,
) -> Result<axum::response::Html<String>, PageError> {
    render(
        state,
        "second_factor.html",
        minijinja::context! {
            csrf,
            keys_only => flow.required == MfaPolicy::PhishingResistant
                && factors.security_keys + factors.passkeys > 0,
            has_totp => factors.totp,
            has_keys => state.webauthn.is_some() && factors.security_keys + factors.passkeys > 0,
            step_up => flow.step_up_of.is_some(),
            error,
        },
    )
}

pub(crate) async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let Some((_, flow)) = current_flow(&state, &jar).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let factors = state.store.second_factors(flow.user_id).await?;
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = page(&state, csrf, factors, &flow, None)?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    csrf: String,
    code: String,
}

/// Which factor a code proved, if any.
async fn check_code(
    state: &AppState,
    user: &User,
    code: &str,
    ip: Option<String>,
) -> Result<Option<&'static str>, PageError> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
        let Some(stored) = state.store.totp_of(user.id).await? else {
            return Ok(None);
        };
        if !stored.confirmed {
            return Ok(None);
        }
        let secret = state
            .keyring
            .open_secret(&totp_label(user.id), &stored.sealed, &stored.master_key_id)
            .map_err(|e| PageError::Internal(e.to_string()))?;
        let Some(step) = totp_step(&secret, &digits, state.clock.unix()) else {
            return Ok(None);
        };
        // A code for a step already used (by this or another replica) is a replay.
        return Ok(state
            .store
            .accept_totp_step(user.id, step)
            .await?
            .then_some("totp"));
    }
    let Some(digest) = recovery_code_digest(user.id, code) else {
        return Ok(None);
    };
    let entry = Actor::user(user.id, &user.username, ip).entry(
        "recovery_code.use",
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    );
    Ok(state
        .store
        .use_recovery_code(user.id, &digest, &entry)
        .await?
        .then_some("recovery_code"))
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some((flow_hash, flow)) = current_flow(&state, &jar).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let user = state.store.get_user(flow.user_id).await?;
    let factors = state.store.second_factors(user.id).await?;
    let refuse = |status: StatusCode, error: String| -> Result<Response, PageError> {
        let page = page(&state, form.csrf.clone(), factors, &flow, Some(error))?;
        Ok((status, [(header::CACHE_CONTROL, "no-store")], page).into_response())
    };
    if user.disabled {
        state.store.end_login_flow(&flow_hash).await?;
        return Ok(Redirect::to("/login").into_response());
    }
    if flow.failures >= FLOW_ATTEMPTS {
        state.store.end_login_flow(&flow_hash).await?;
        return Err(PageError::Forbidden(t("second-factor-too-many")));
    }
    if let Some(wait) = state.throttle.attempt(&user.username, client.ip.as_deref()) {
        let entry = Actor::user(user.id, &user.username, client.ip.clone())
            .entry(
                "login.throttled",
                Target::User {
                    id: user.id,
                    name: user.username.clone(),
                },
            )
            .with_detail(serde_json::json!({ "step": "second_factor" }));
        state.store.record(&entry).await?;
        return refuse(StatusCode::TOO_MANY_REQUESTS, throttled_message(wait));
    }
    if flow.required == MfaPolicy::PhishingResistant && factors.security_keys + factors.passkeys > 0
    {
        // Codes can be relayed by a phishing page; this sign-in needs a WebAuthn key.
        state
            .throttle
            .passed_first_factor(&user.username, client.ip.as_deref());
        return refuse(StatusCode::FORBIDDEN, t("second-factor-codes-not-enough"));
    }
    let Some(factor) = check_code(&state, &user, &form.code, client.ip.clone()).await? else {
        let failures = state.store.login_flow_failed(&flow_hash).await?;
        let entry = Actor::user(user.id, &user.username, client.ip.clone())
            .entry(
                "login.failure",
                Target::User {
                    id: user.id,
                    name: user.username.clone(),
                },
            )
            .with_detail(serde_json::json!({ "step": "second_factor" }));
        state.store.record(&entry).await?;
        if failures >= FLOW_ATTEMPTS {
            state.store.end_login_flow(&flow_hash).await?;
            return Err(PageError::Forbidden(t("second-factor-too-many")));
        }
        return refuse(StatusCode::UNAUTHORIZED, t("second-factor-wrong-code"));
    };
    // The flow completes once, even if two submissions race.
    if !state.store.end_login_flow(&flow_hash).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    state
        .throttle
        .succeeded(&user.username, client.ip.as_deref());
    let jar = forget_flow(&state, jar);
    let (jar, amr) =
        session_cookie::after_flow(&state, jar, &user, &flow, &["otp", "mfa"], client).await?;
    let Some(amr) = amr else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    tracing::debug!(factor, "second factor accepted");
    Ok((jar, Redirect::to(&after_second_factor(&flow, &amr))).into_response())
}

/// Where a completed sign-in goes: back where it started, or, when what was asked for (a key)
/// is still missing, to the page where the user adds it.
pub(super) fn after_second_factor(flow: &LoginFlow, amr: &str) -> String {
    if flow.required.met_by(amr) {
        flow.return_to.clone()
    } else {
        format!("/account/security?needed={}", flow.required.as_str())
    }
}
