//! `/settings`: what the console's settings page changes, for scripts: the organisation's
//! name, logo and colour, session lifetimes and the global sign-in policy.

use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    extract::ApiJson,
    settings::{self, SettingsChange},
    state::AppState,
};
use axum::{Json, extract::State};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    pub organisation_name: String,
    /// `#rrggbb`, or absent for the default colour.
    pub brand_colour: Option<String>,
    /// The logo's content type; the image itself is at `/assets/logo`.
    pub logo: Option<String>,
    /// Seconds a session may stay unused.
    pub session_idle_timeout: i64,
    /// Seconds a session lives at most.
    pub session_lifetime: i64,
    /// `optional`, `required` or `phishing_resistant`.
    pub mfa_policy: String,
    /// The settings changed here, over the config file's values.
    pub overridden: Vec<String>,
}

async fn view(state: &AppState) -> Result<SettingsView, ApiError> {
    let current = state.settings();
    Ok(SettingsView {
        organisation_name: current.organisation_name.clone(),
        brand_colour: current.brand_colour.clone(),
        logo: current.logo.as_ref().map(|logo| logo.0.to_owned()),
        session_idle_timeout: current.session_idle_timeout,
        session_lifetime: current.session_lifetime,
        mfa_policy: current.mfa_policy.as_str().to_owned(),
        overridden: state.store.settings().await?.into_keys().collect(),
    })
}

/// The settings in force.
#[utoipa::path(get, path = "/settings", tag = "settings", responses((status = 200, body = SettingsView)))]
pub async fn show(_: Admin, State(state): State<AppState>) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(view(&state).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// 1 to 100 characters.
    organisation_name: Option<String>,
    /// `#rrggbb`.
    brand_colour: Option<String>,
    /// Seconds, 300 to 31536000, at most `session_lifetime`.
    session_idle_timeout: Option<i64>,
    /// Seconds, 3600 to 31536000.
    session_lifetime: Option<i64>,
    /// `optional`, `required` or `phishing_resistant`.
    mfa_policy: Option<String>,
    /// Base64 of a PNG, JPEG, WebP or SVG image of at most 512 KiB; `null` removes the logo.
    #[serde(default, deserialize_with = "super::views::present")]
    #[schema(value_type = Option<String>, nullable)]
    logo: Option<Option<String>>,
}

/// Change settings; what is not given stays. In force at once here, and within 5 seconds on
/// other replicas. A value that does not check out changes nothing.
#[utoipa::path(patch, path = "/settings", tag = "settings", request_body = UpdateSettings,
    responses((status = 200, body = SettingsView), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UpdateSettings>,
) -> Result<Json<SettingsView>, ApiError> {
    let logo = match body.logo {
        Some(Some(encoded)) => Some(Some(STANDARD.decode(encoded.trim()).map_err(|e| {
            ApiError::Invalid {
                field: "logo".into(),
                detail: format!("not base64 ({e})"),
            }
        })?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = SettingsChange {
        organisation_name: body.organisation_name,
        brand_colour: body.brand_colour,
        session_idle_timeout: body.session_idle_timeout,
        session_lifetime: body.session_lifetime,
        mfa_policy: body.mfa_policy,
        logo,
    };
    let rows = change
        .rows(&state.settings(), state.webauthn.is_some())
        .map_err(|refused| ApiError::Invalid {
            field: refused.field.into(),
            detail: refused.message,
        })?;
    if !rows.is_empty() {
        settings::apply(&state, &admin.actor, &rows).await?;
    }
    Ok(Json(view(&state).await?))
}
