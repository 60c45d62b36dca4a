//! `/admin/settings`: the organisation's name, logo and colour, how long sessions last, and
//! what every sign-in must use. Stored over the config file's values (see [`crate::settings`]);
//! a form with any bad value changes nothing.

use super::{
    PageError,
    admin::{admin, admin_form},
    form_page, render,
    setup::ClientInfo,
};
use crate::{
    csrf,
    i18n::{t, t_args},
    settings::{self, SettingsChange},
    state::AppState,
};
use axum::{
    extract::{Multipart, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Serialize;

/// What the form shows: the values in force, or what was sent with the error.
#[derive(Serialize, Default)]
struct Shown {
    organisation_name: String,
    brand_colour: String,
    idle_minutes: String,
    lifetime_hours: String,
    mfa_policy: String,
    has_logo: bool,
}

async fn settings_page(
    state: &AppState,
    jar: CookieJar,
    shown: Option<Shown>,
    error: Option<String>,
    saved: bool,
) -> Result<Response, PageError> {
    let current = state.settings();
    let shown = shown.unwrap_or_else(|| Shown {
        organisation_name: current.organisation_name.clone(),
        brand_colour: current
            .brand_colour
            .clone()
            .unwrap_or_else(|| "#1f5fbf".into()),
        idle_minutes: (current.session_idle_timeout / 60).to_string(),
        lifetime_hours: (current.session_lifetime / 3600).to_string(),
        mfa_policy: current.mfa_policy.as_str().to_owned(),
        has_logo: current.logo.is_some(),
    });
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_settings.html",
        minijinja::context! {
            csrf, error, saved, section => "settings",
            form => minijinja::Value::from_serialize(&shown),
            mail => state.mailer.as_ref().map(|m| m.server().to_owned()),
        },
    )?;
    Ok(form_page(refused, jar, page))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, "/admin/settings").await? {
        return Ok(redirect);
    }
    settings_page(&state, jar, None, None, query.contains_key("saved")).await
}

/// The form as sent.
#[derive(Default)]
struct Sent {
    csrf: String,
    fields: std::collections::HashMap<String, String>,
    logo: Option<Vec<u8>>,
}

async fn read_form(mut multipart: Multipart) -> Result<Sent, String> {
    let mut sent = Sent::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "logo" {
            let bytes = field.bytes().await.map_err(|e| e.body_text())?;
            if !bytes.is_empty() {
                sent.logo = Some(bytes.to_vec());
            }
        } else {
            let text = field.text().await.map_err(|e| e.body_text())?;
            if name == "csrf" {
                sent.csrf = text;
            } else {
                sent.fields.insert(name, text);
            }
        }
    }
    Ok(sent)
}

/// The change the form asks for: its minutes and hours in seconds, the logo if one was chosen.
fn change_of(sent: &Sent) -> Result<SettingsChange, String> {
    let field = |name: &str| {
        sent.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    // `what` is the field's name as the error says it (`admin-settings-idle-field`).
    let number = |name: &str, what: &str| {
        field(name)
            .parse::<i64>()
            .map_err(|_| t_args("admin-settings-whole-number", &[("field", t(what).into())]))
    };
    Ok(SettingsChange {
        organisation_name: Some(field("organisation_name")),
        brand_colour: Some(field("brand_colour")),
        session_idle_timeout: Some(
            number("idle_minutes", "admin-settings-idle-field")?.saturating_mul(60),
        ),
        session_lifetime: Some(
            number("lifetime_hours", "admin-settings-lifetime-field")?.saturating_mul(3600),
        ),
        mfa_policy: Some(field("mfa_policy")),
        logo: match &sent.logo {
            Some(bytes) => Some(Some(bytes.clone())),
            None if sent.fields.contains_key("remove_logo") => Some(None),
            None => None,
        },
    })
}

/// A form body read and checked as [`save`] reads and checks it, against `current` with
/// passkeys available; nothing is stored. For the fuzz target `settings_form`.
pub(crate) async fn checked_form(
    content_type: &str,
    body: Vec<u8>,
    current: &settings::Settings,
) -> Result<Vec<(&'static str, Option<String>)>, String> {
    use axum::extract::FromRequest;
    let request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .map_err(|e| e.to_string())?;
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.body_text())?;
    let sent = read_form(multipart).await?;
    changes(&sent, current, true)
}

/// The changes a valid form asks for against the settings in force (`webauthn`: whether
/// passkeys can be used), or why it is not valid.
fn changes(
    sent: &Sent,
    current: &settings::Settings,
    webauthn: bool,
) -> Result<Vec<(&'static str, Option<String>)>, String> {
    let change = change_of(sent)?;
    change.rows(current, webauthn).map_err(|refused| {
        let mut message = refused.message;
        if let Some(first) = message.get(..1) {
            message.replace_range(..1, &first.to_uppercase());
        }
        message + "."
    })
}

pub(crate) async fn save(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let sent = read_form(multipart).await.map_err(|e| {
        PageError::BadRequest(t_args(
            "admin-settings-unreadable",
            &[("reason", e.to_string().into())],
        ))
    })?;
    let actor = match admin_form(
        &state,
        &headers,
        &jar,
        &sent.csrf,
        &client,
        "/admin/settings",
    )
    .await?
    {
        Ok(actor) => actor,
        Err(redirect) => return Ok(redirect),
    };
    let changes = match changes(&sent, &state.settings(), state.webauthn.is_some()) {
        Ok(changes) => changes,
        Err(error) => {
            let field = |name: &str| sent.fields.get(name).cloned().unwrap_or_default();
            let shown = Shown {
                organisation_name: field("organisation_name"),
                brand_colour: field("brand_colour"),
                idle_minutes: field("idle_minutes"),
                lifetime_hours: field("lifetime_hours"),
                mfa_policy: field("mfa_policy"),
                has_logo: state.settings().logo.is_some(),
            };
            return settings_page(&state, jar, Some(shown), Some(error), false).await;
        }
    };
    settings::apply(&state, &actor, &changes).await?;
    Ok(Redirect::to("/admin/settings?saved=1").into_response())
}
