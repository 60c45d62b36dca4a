//! A person's sign-in, as an admin manages it: invitation and password-reset links, their
//! second factors (listed, or all removed), and their sessions.

use super::lookup;
use crate::{
    auth::Admin,
    directory,
    error::{ApiError, Problem},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use stackgate_identity::{OffsetDateTime, Uuid};
use stackgate_store::LinkPurpose;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The link, present only when it was not emailed: pass it on to the person yourself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The address the link was emailed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailed_to: Option<String>,
    /// Why the link was not emailed although a mail server is set up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_emailed: Option<String>,
}

impl From<directory::IssuedLink> for LinkView {
    fn from(link: directory::IssuedLink) -> Self {
        Self {
            url: link.emailed_to.is_none().then_some(link.url),
            expires_at: link.expires_at,
            emailed_to: link.emailed_to,
            not_emailed: link.not_emailed,
        }
    }
}

async fn link(
    state: &AppState,
    admin: &Admin,
    key: &str,
    purpose: LinkPurpose,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let user = lookup::user(state, key).await?;
    let issued = directory::issue_link(state, &admin.actor, &user, purpose).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// Invite a person: a single-use link (valid `invitation_lifetime` seconds) to choose their
/// password and set up their second factors. Emailed when a mail server is set up and the
/// person has an address; replaces their earlier invitation.
#[utoipa::path(post, path = "/users/{user}/invitation", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 201, body = LinkView), (status = 404, body = Problem), (status = 409, body = Problem, description = "The account is disabled")))]
pub async fn invite(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    link(&state, &admin, &key, LinkPurpose::Invite).await
}

/// Send a person a single-use link to choose a new password (valid
/// `password_reset_lifetime` seconds). Their second factors stay required; using the link
/// signs them out everywhere.
#[utoipa::path(post, path = "/users/{user}/password-reset", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 201, body = LinkView), (status = 404, body = Problem), (status = 409, body = Problem, description = "The account is disabled")))]
pub async fn password_reset(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    link(&state, &admin, &key, LinkPurpose::Reset).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FactorsRemovedView {
    pub totp: u64,
    /// Passkeys and security keys.
    pub webauthn: u64,
    pub recovery_codes: u64,
}

/// Remove every second factor of a person (a lost phone or key) and sign them out
/// everywhere. Their next sign-in leads them through enrolment where their policy requires it.
#[utoipa::path(post, path = "/users/{user}/reset-mfa", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = FactorsRemovedView), (status = 404, body = Problem)))]
pub async fn reset_mfa(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<FactorsRemovedView>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let removed = directory::reset_second_factors(&state, &admin.actor, &user).await?;
    Ok(Json(FactorsRemovedView {
        totp: removed.totp,
        webauthn: removed.webauthn,
        recovery_codes: removed.recovery_codes,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    pub name: String,
    /// `passkey` or `security_key`.
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactorsView {
    pub totp: bool,
    pub recovery_codes_left: i64,
    pub devices: Vec<DeviceView>,
}

/// A person's second factors: their passkeys and security keys, authenticator app and
/// recovery codes.
#[utoipa::path(get, path = "/users/{user}/second-factors", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = SecondFactorsView), (status = 404, body = Problem)))]
pub async fn second_factors(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SecondFactorsView>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let factors = state.store.second_factors(user.id).await?;
    let devices = state
        .store
        .credentials_of(user.id)
        .await?
        .into_iter()
        .map(|c| DeviceView {
            id: c.id,
            name: c.name,
            kind: c.kind.as_str().to_owned(),
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        })
        .collect();
    Ok(Json(SecondFactorsView {
        totp: factors.totp,
        recovery_codes_left: factors.recovery_codes_left,
        devices,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// How the person signed in (`pwd`, `otp`, `hwk`, ...).
    pub amr: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<stackgate_store::SessionSummary> for SessionView {
    fn from(s: stackgate_store::SessionSummary) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            amr: s.amr.split_whitespace().map(str::to_owned).collect(),
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// A person's live sign-in sessions, most recently used first.
#[utoipa::path(get, path = "/users/{user}/sessions", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = Vec<SessionView>), (status = 404, body = Problem)))]
pub async fn sessions(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let sessions = state
        .store
        .sessions_of(user.id, state.settings().session_idle_timeout)
        .await?;
    Ok(Json(sessions.into_iter().map(SessionView::from).collect()))
}
