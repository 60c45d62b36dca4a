//! A person's own sign-in methods: the authenticator app (TOTP) and recovery codes.

use super::{PageError, no_store, render, second_factor::totp_label, setup::ClientInfo, when};
use crate::{
    auth::session_from_cookies,
    csrf,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use stackgate_identity::{
    Actor, MfaPolicy, Target, new_recovery_codes, new_totp_secret, recovery_code_digest,
    totp_secret_text, totp_step, totp_url,
};
use stackgate_store::{Session, Sessions};

const SIGN_IN_FIRST: &str = "/login?return_to=/account/security";

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, PageError> {
    Ok(session_from_cookies(state, headers).await?)
}

/// A fresh authentication for changes to the account's factors: the password again, throttled
/// like a sign-in, so a session left open on a shared computer (or a stolen cookie) cannot add,
/// replace or remove a factor.
pub(super) async fn password_again(
    state: &AppState,
    session: &Session,
    password: String,
    ip: Option<&str>,
) -> Result<Result<(), String>, PageError> {
    let user = &session.user;
    if let Some(wait) = state.throttle.attempt(&user.username, ip) {
        return Ok(Err(super::login::throttled_message(wait)));
    }
    let stored = state
        .store
        .login_candidate(&user.username)
        .await?
        .and_then(|(_, hash)| hash);
    if state.hasher.verify(password, stored).await {
        state.throttle.passed_first_factor(&user.username, ip);
        return Ok(Ok(()));
    }
    let entry = Actor::user(user.id, &user.username, ip.map(str::to_owned))
        .entry("login.failure", audit_target(session))
        .with_detail(serde_json::json!({ "step": "password_again" }));
    state.store.record(&entry).await?;
    Ok(Err(t("account-security-wrong-password")))
}

async fn security_page(
    state: &AppState,
    csrf: String,
    session: &Session,
    error: Option<String>,
) -> Result<Html<String>, PageError> {
    security_page_for(state, csrf, session, MfaPolicy::Optional, None, error).await
}

/// The page, saying what must be added when the policy (or an app, `needed`) asks for more
/// than this session used.
async fn security_page_for(
    state: &AppState,
    csrf: String,
    session: &Session,
    needed: MfaPolicy,
    done: Option<String>,
    error: Option<String>,
) -> Result<Html<String>, PageError> {
    let factors = state.store.second_factors(session.user.id).await?;
    let keys: Vec<_> = state
        .store
        .credentials_of(session.user.id)
        .await?
        .into_iter()
        .map(|c| {
            minijinja::context! {
                id => c.id.to_string(),
                name => c.name,
                kind => match c.kind {
                    stackgate_store::CredentialKind::Passkey => t("credential-passkey"),
                    stackgate_store::CredentialKind::SecurityKey => t("credential-security-key"),
                },
                created => when(c.created_at),
                last_used => c.last_used_at.map(when),
            }
        })
        .collect();
    let required = crate::auth::required_policy(state, session).max(needed);
    let must_add = (!required.met_by(&session.amr)).then(|| match required {
        MfaPolicy::PhishingResistant => t("account-security-needs-key"),
        _ => t("account-security-needs-second-factor"),
    });
    render(
        state,
        "account_security.html",
        minijinja::context! {
            csrf,
            must_add,
            done,
            username => session.user.username,
            display_name => session.user.display_name,
            email => session.user.email,
            has_totp => factors.totp,
            recovery_codes_left => factors.recovery_codes_left,
            keys,
            webauthn => state.webauthn.is_some(),
            error,
        },
    )
}

fn audit_target(session: &Session) -> Target {
    Target::User {
        id: session.user.id,
        name: session.user.username.clone(),
    }
}

#[derive(Deserialize)]
pub(crate) struct SecurityQuery {
    /// What an app asked for that this sign-in could not give (`phishing_resistant`).
    needed: Option<String>,
    /// What was just changed (`password`), to confirm it.
    changed: Option<String>,
}

pub(crate) async fn security(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<SecurityQuery>,
) -> Result<Response, PageError> {
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let needed = query
        .needed
        .as_deref()
        .and_then(|n| MfaPolicy::parse("needed", n).ok())
        .unwrap_or_default();
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let done = match query.changed.as_deref() {
        Some("password") => Some(t("account-security-password-changed")),
        Some("profile") => Some(t("account-security-details-saved")),
        _ => None,
    };
    let page = security_page_for(&state, csrf, &session, needed, done, None).await?;
    Ok(no_store(jar, page))
}

/// The QR code as inline SVG (generated markup only: no user input reaches it unescaped).
fn qr_svg(data: &str) -> Result<String, PageError> {
    let code =
        qrcode::QrCode::new(data.as_bytes()).map_err(|e| PageError::Internal(e.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML: drop the XML declaration.
    Ok(svg
        .find("<svg")
        .map(|at| svg[at..].to_owned())
        .unwrap_or(svg))
}

fn enrol_page(
    state: &AppState,
    csrf: String,
    secret: &[u8],
    account: &str,
    error: Option<&str>,
) -> Result<Html<String>, PageError> {
    let url = totp_url(secret, &state.settings().organisation_name, account)?;
    render(
        state,
        "totp_enrol.html",
        minijinja::context! {
            csrf,
            qr => minijinja::Value::from_safe_string(qr_svg(&url)?),
            secret_text => totp_secret_text(secret),
            error,
        },
    )
}

/// Starts (or restarts) enrolment: a new secret, shown as a QR code and as text.
pub(crate) async fn totp_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let user = &session.user;
    if state.store.second_factors(user.id).await?.totp {
        return Ok(Redirect::to("/account/security").into_response());
    }
    let secret = new_totp_secret()?;
    let (sealed, key_id) = state
        .keyring
        .seal_secret(&totp_label(user.id), &secret)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    state.store.begin_totp(user.id, &sealed, &key_id).await?;
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = enrol_page(&state, csrf, &secret, &user.username, None)?;
    Ok(no_store(jar, page))
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    csrf: String,
    code: String,
    password: String,
}

/// Confirms enrolment with a first code from the app.
pub(crate) async fn totp_confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let user = &session.user;
    let Some(stored) = state.store.totp_of(user.id).await?.filter(|t| !t.confirmed) else {
        return Ok(Redirect::to("/account/security").into_response());
    };
    let secret = state
        .keyring
        .open_secret(&totp_label(user.id), &stored.sealed, &stored.master_key_id)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    if let Err(error) =
        password_again(&state, &session, form.password, client.ip.as_deref()).await?
    {
        let page = enrol_page(&state, form.csrf, &secret, &user.username, Some(&error))?;
        return Ok((StatusCode::UNAUTHORIZED, no_store(jar, page)).into_response());
    }
    let Some(step) = totp_step(&secret, &form.code, state.clock.unix()) else {
        let page = enrol_page(
            &state,
            form.csrf,
            &secret,
            &user.username,
            Some(&t("totp-enrol-code-mismatch")),
        )?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, no_store(jar, page)).into_response());
    };
    let entry = Actor::user(user.id, &user.username, client.ip.clone())
        .entry("totp.enrol", audit_target(&session));
    // Confirms the secret this code was checked against, not one a second tab put there since.
    if !state
        .store
        .confirm_totp(user.id, &stored.sealed, step, &entry)
        .await?
    {
        return Err(PageError::BadRequest(t("totp-enrol-restarted")));
    }
    // Led here at sign-in by a policy asking for two factors: the code just proven counts.
    let upgraded = super::session_cookie::with_methods(&session.amr, &["otp", "mfa"]);
    let jar = if !crate::auth::meets_policy(&state, &session)
        && crate::auth::required_policy(&state, &session).met_by(&upgraded)
    {
        super::session_cookie::step_up(&state, jar, user, &upgraded, client.ip).await?
    } else {
        jar
    };
    Ok((jar, Redirect::to("/account/security")).into_response())
}

/// Removes the authenticator app; the password is asked again (a fresh authentication), so a
/// session left open on a shared computer cannot strip the account's second factor.
pub(crate) async fn totp_remove(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let user = &session.user;
    if let Err(error) =
        password_again(&state, &session, form.password, client.ip.as_deref()).await?
    {
        let page = security_page(&state, form.csrf, &session, Some(error)).await?;
        return Ok((StatusCode::UNAUTHORIZED, no_store(jar, page)).into_response());
    }
    let entry = Actor::user(user.id, &user.username, client.ip)
        .entry("totp.remove", audit_target(&session));
    state.store.remove_totp(user.id, &entry).await?;
    Ok(Redirect::to("/account/security").into_response())
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    password: String,
}

/// New recovery codes, shown once; the old ones stop working.
pub(crate) async fn recovery_codes(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let user = &session.user;
    if let Err(error) =
        password_again(&state, &session, form.password, client.ip.as_deref()).await?
    {
        let page = security_page(&state, form.csrf, &session, Some(error)).await?;
        return Ok((StatusCode::UNAUTHORIZED, no_store(jar, page)).into_response());
    }
    let codes = new_recovery_codes()?;
    let digests: Vec<String> = codes
        .iter()
        .filter_map(|code| recovery_code_digest(user.id, code))
        .collect();
    if digests.len() != codes.len() {
        return Err(PageError::Internal(
            "a new recovery code does not parse".into(),
        ));
    }
    let entry = Actor::user(user.id, &user.username, client.ip)
        .entry("recovery_codes.generate", audit_target(&session));
    state
        .store
        .replace_recovery_codes(user.id, &digests, &entry)
        .await?;
    let page = render(&state, "recovery_codes.html", minijinja::context! { codes })?;
    Ok(no_store(jar, page))
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    csrf: String,
    password: String,
    new_password: String,
    new_password_confirm: String,
}

/// Changes the password: the current one first, then the new one twice, checked against the
/// policy. A sign-in half-way through with the old password cannot finish afterwards.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<PasswordChange>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let refused = |status: StatusCode, page: Html<String>, jar: CookieJar| {
        (status, no_store(jar, page)).into_response()
    };
    if form.new_password != form.new_password_confirm {
        let error = t("account-security-new-passwords-differ");
        let page = security_page(&state, form.csrf, &session, Some(error)).await?;
        return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, page, jar));
    }
    if let Err(error) =
        password_again(&state, &session, form.password, client.ip.as_deref()).await?
    {
        let page = security_page(&state, form.csrf, &session, Some(error)).await?;
        return Ok(refused(StatusCode::UNAUTHORIZED, page, jar));
    }
    let user = &session.user;
    let hash = match state.hasher.hash(form.new_password, &user.username).await {
        Ok(hash) => hash,
        Err(stackgate_identity::IdentityError::WeakPassword(weakness)) => {
            let error = t_args(
                "account-security-weak-password",
                &[("reason", crate::i18n::weakness(&weakness).into())],
            );
            let page = security_page(&state, form.csrf, &session, Some(error)).await?;
            return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, page, jar));
        }
        Err(other) => return Err(other.into()),
    };
    // Whoever knew the old password may hold a session made with it: every other device signs
    // in again, with the new one. This browser stays signed in. The sessions end first: should
    // the password then fail to save, the worst left is devices signed out, never a new
    // password beside a thief's live session.
    let ended = Actor::user(user.id, &user.username, client.ip.clone())
        .entry("user.sign_out", audit_target(&session));
    crate::oidc::sign_off::end(
        &state,
        Sessions::OthersOf {
            user: user.id,
            keep: session.id,
        },
        "password changed",
        &ended,
    )
    .await?;
    let entry = Actor::user(user.id, &user.username, client.ip)
        .entry("user.password_change", audit_target(&session));
    state.store.set_password(user.id, &hash, &entry).await?;
    Ok(Redirect::to("/account/security?changed=password").into_response())
}

#[derive(Deserialize)]
pub(crate) struct ProfileChange {
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// A person's own name and email. Changing the email asks for the password again: invitations
/// and reset links go to it.
pub(crate) async fn change_profile(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<ProfileChange>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = signed_in(&state, &headers).await? else {
        return Ok(Redirect::to(SIGN_IN_FIRST).into_response());
    };
    let user = &session.user;
    let email = Some(form.email.trim()).filter(|e| !e.is_empty());
    let patch = match stackgate_identity::UserPatch::parse(
        Some(email),
        Some(form.display_name.trim()),
        None,
    ) {
        Ok(patch) => patch,
        Err(err) => {
            let error = t_args(
                "account-security-refused",
                &[("reason", err.to_string().into())],
            );
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return refused_profile(&state, form.csrf, &session, jar, status, error).await;
        }
    };
    if email != user.email.as_deref()
        && let Err(error) = password_again(
            &state,
            &session,
            form.password.clone(),
            client.ip.as_deref(),
        )
        .await?
    {
        let status = StatusCode::UNAUTHORIZED;
        return refused_profile(&state, form.csrf, &session, jar, status, error).await;
    }
    let entry = Actor::user(user.id, &user.username, client.ip.clone())
        .entry("user.update", audit_target(&session))
        .with_detail(serde_json::json!({ "changed": ["display_name", "email"], "by": "self" }));
    match state.store.update_user(user.id, &patch, &entry).await {
        Ok(_) => Ok(Redirect::to("/account/security?changed=profile").into_response()),
        Err(stackgate_store::StoreError::Conflict { message, .. }) => {
            let error = t_args("account-security-refused", &[("reason", message.into())]);
            refused_profile(
                &state,
                form.csrf,
                &session,
                jar,
                StatusCode::CONFLICT,
                error,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

async fn refused_profile(
    state: &AppState,
    csrf: String,
    session: &Session,
    jar: CookieJar,
    status: StatusCode,
    error: String,
) -> Result<Response, PageError> {
    let page = security_page(state, csrf, session, Some(error)).await?;
    Ok((status, no_store(jar, page)).into_response())
}
