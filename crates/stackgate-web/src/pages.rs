//! Pages for people: first-run setup, sign-in, and a landing page. Server-rendered with
//! auto-escaping templates; no scripts. Failures become a friendly page, rendered here.

mod account;
mod account_link;
mod account_sessions;
mod admin;
mod admin_apps;
mod admin_audit;
mod admin_clients;
mod admin_groups;
mod admin_policy;
mod admin_settings;
mod admin_users;
mod home;
mod login;
mod proxy_sign_in;
mod second_factor;
mod session_cookie;
mod setup;
mod sign_in_methods;
mod webauthn;

use crate::{error::ApiError, i18n::t, state::AppState};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use minijinja::Environment;
use serde::Serialize;
use std::sync::LazyLock;

pub(crate) use admin_settings::checked_form as checked_settings_form;
pub(crate) use webauthn::fuzzing as webauthn_fuzzing;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/setup", get(setup::form).post(setup::submit))
        .route("/login", get(login::form).post(login::submit))
        .route("/login/identify", axum::routing::post(login::identify))
        .route("/proxy/sign-in", get(proxy_sign_in::start))
        .route(
            "/forward-auth",
            axum::routing::any(proxy_sign_in::forward_auth),
        )
        .route(
            "/login/second-factor",
            get(second_factor::form).post(second_factor::submit),
        )
        .route(
            "/login/passkey/start",
            axum::routing::post(webauthn::login_start),
        )
        .route(
            "/login/passkey/finish",
            axum::routing::post(webauthn::login_finish),
        )
        .route(
            "/login/second-factor/webauthn/start",
            axum::routing::post(webauthn::second_factor_start),
        )
        .route(
            "/login/second-factor/webauthn/finish",
            axum::routing::post(webauthn::second_factor_finish),
        )
        .route(
            "/account/webauthn/register/start",
            axum::routing::post(webauthn::register_start),
        )
        .route(
            "/account/webauthn/register/finish",
            axum::routing::post(webauthn::register_finish),
        )
        .route(
            "/account/webauthn/{id}/rename",
            axum::routing::post(webauthn::rename),
        )
        .route(
            "/account/webauthn/{id}/remove",
            axum::routing::post(webauthn::remove),
        )
        .route("/assets/webauthn.js", get(webauthn_script))
        .route("/assets/brand.css", get(brand_stylesheet))
        .route("/assets/logo", get(logo))
        .route("/logout", axum::routing::post(login::logout))
        .route(
            "/logout/everywhere",
            axum::routing::post(login::logout_everywhere),
        )
        .route("/account/security", get(account::security))
        .route(
            "/admin",
            get(|| async { axum::response::Redirect::to("/admin/users") }),
        )
        .route(
            "/admin/users",
            get(admin_users::list).post(admin_users::create),
        )
        .route("/admin/users/{id}", get(admin_users::show))
        .route(
            "/admin/users/{id}/{action}",
            axum::routing::post(admin_users::act),
        )
        .route(
            "/admin/groups",
            get(admin_groups::list).post(admin_groups::create),
        )
        .route("/admin/groups/{id}", get(admin_groups::show))
        .route(
            "/admin/groups/{id}/{action}",
            axum::routing::post(admin_groups::act),
        )
        .route("/admin/audit", get(admin_audit::list))
        .route(
            "/admin/clients",
            get(admin_clients::list).post(admin_clients::register),
        )
        .route(
            "/admin/clients/{id}/{action}",
            axum::routing::post(admin_clients::act),
        )
        .route(
            "/admin/settings",
            get(admin_settings::show).post(admin_settings::save),
        )
        .route(
            "/admin/policy",
            get(admin_policy::show).post(admin_policy::save),
        )
        .route(
            "/admin/apps/{id}/access",
            axum::routing::post(admin_apps::access),
        )
        .route(
            "/account/link",
            get(account_link::form).post(account_link::submit),
        )
        .route("/account/sessions", get(account_sessions::list))
        .route(
            "/account/sessions/{id}/end",
            axum::routing::post(account_sessions::end),
        )
        .route("/admin/apps", get(admin_apps::list))
        .route(
            "/admin/apps/install",
            axum::routing::post(admin_apps::install),
        )
        .route("/admin/apps/{id}", get(admin_apps::show))
        .route(
            "/admin/apps/{id}/uninstall",
            axum::routing::post(admin_apps::uninstall),
        )
        .route(
            "/account/totp",
            get(account::totp_form).post(account::totp_confirm),
        )
        .route(
            "/account/totp/remove",
            axum::routing::post(account::totp_remove),
        )
        .route(
            "/account/profile",
            axum::routing::post(account::change_profile),
        )
        .route(
            "/account/password",
            axum::routing::post(account::change_password),
        )
        .route(
            "/account/recovery-codes",
            axum::routing::post(account::recovery_codes),
        )
        .route("/assets/style.css", get(stylesheet))
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `{{ t("message-id", name=value) }}`: a message in the reader's language (see `i18n`).
    env.add_function("t", crate::i18n::template_t);
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("message.html", include_str!("../templates/message.html")),
        ("setup.html", include_str!("../templates/setup.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("home.html", include_str!("../templates/home.html")),
        (
            "admin_apps.html",
            include_str!("../templates/admin_apps.html"),
        ),
        (
            "admin_app.html",
            include_str!("../templates/admin_app.html"),
        ),
        (
            "second_factor.html",
            include_str!("../templates/second_factor.html"),
        ),
        (
            "account_security.html",
            include_str!("../templates/account_security.html"),
        ),
        (
            "totp_enrol.html",
            include_str!("../templates/totp_enrol.html"),
        ),
        (
            "recovery_codes.html",
            include_str!("../templates/recovery_codes.html"),
        ),
        ("consent.html", include_str!("../templates/consent.html")),
        (
            "admin_policy.html",
            include_str!("../templates/admin_policy.html"),
        ),
        (
            "admin_settings.html",
            include_str!("../templates/admin_settings.html"),
        ),
        (
            "admin_clients.html",
            include_str!("../templates/admin_clients.html"),
        ),
        (
            "account_sessions.html",
            include_str!("../templates/account_sessions.html"),
        ),
        (
            "account_link.html",
            include_str!("../templates/account_link.html"),
        ),
        (
            "admin_audit.html",
            include_str!("../templates/admin_audit.html"),
        ),
        (
            "admin_group.html",
            include_str!("../templates/admin_group.html"),
        ),
        (
            "admin_groups.html",
            include_str!("../templates/admin_groups.html"),
        ),
        (
            "admin_user.html",
            include_str!("../templates/admin_user.html"),
        ),
        (
            "admin_users.html",
            include_str!("../templates/admin_users.html"),
        ),
        (
            "signed_out.html",
            include_str!("../templates/signed_out.html"),
        ),
        (
            "confirm_sign_out.html",
            include_str!("../templates/confirm_sign_out.html"),
        ),
    ] {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(%err, name, "template does not compile");
        }
    }
    env
});

/// Renders a page; `org` (the organisation's name) and `lang` (the reader's language, as
/// negotiated by `i18n`) are available to every template.
pub(crate) fn render<C: Serialize>(
    state: &AppState,
    name: &str,
    ctx: C,
) -> Result<Html<String>, PageError> {
    let template = TEMPLATES
        .get_template(name)
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let settings = state.settings();
    template
        .render(minijinja::context! {
            org => &settings.organisation_name,
            lang => crate::i18n::current().tag(),
            webauthn => state.webauthn.is_some(),
            logo => settings.logo.is_some(),
            brand => settings.brand_colour.is_some(),
            ..minijinja::Value::from_serialize(&ctx)
        })
        .map(Html)
        .map_err(|e| PageError::Internal(e.to_string()))
}

/// A page that holds a CSRF token or personal data: never kept by a cache.
pub(crate) fn no_store(jar: axum_extra::extract::CookieJar, page: Html<String>) -> Response {
    (jar, [(header::CACHE_CONTROL, "no-store")], page).into_response()
}

/// A form's page: 422 when it shows a refused change, so scripts and tests can tell.
pub(crate) fn form_page(
    refused: bool,
    jar: axum_extra::extract::CookieJar,
    page: Html<String>,
) -> Response {
    let status = if refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, no_store(jar, page)).into_response()
}

/// A time as the pages show it.
pub(crate) fn when(t: stackgate_identity::OffsetDateTime) -> String {
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

/// What a person sees when something goes wrong: a plain explanation and what to do next.
#[derive(Debug)]
pub(crate) enum PageError {
    BadRequest(String),
    Forbidden(String),
    NotFound,
    Gone(String),
    Unavailable(String),
    Internal(String),
}

impl PageError {
    /// A form whose CSRF token or origin does not check out: stale, or sent from another site.
    pub(crate) fn forged_form() -> Self {
        PageError::Forbidden(t("error-forged-form"))
    }

    /// The status, title and explanation. The variants' own messages are in the reader's
    /// language already; the causes of 503 and 500 are for the log, not for the page.
    fn parts(&self) -> (StatusCode, String, String) {
        match self {
            PageError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                t("error-bad-request-title"),
                m.clone(),
            ),
            PageError::Forbidden(m) => {
                (StatusCode::FORBIDDEN, t("error-forbidden-title"), m.clone())
            }
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                t("error-not-found-title"),
                t("error-not-found"),
            ),
            PageError::Gone(m) => (StatusCode::GONE, t("error-gone-title"), m.clone()),
            PageError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                t("error-unavailable-title"),
                t("error-unavailable"),
            ),
            PageError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                t("error-internal-title"),
                t("error-internal"),
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match &self {
            PageError::Internal(cause) => tracing::error!(%cause, "page failed"),
            PageError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let (status, title, message) = self.parts();
        let lang = crate::i18n::current().tag();
        let body = TEMPLATES
            .get_template("message.html")
            .and_then(|t| t.render(minijinja::context! { title, message, lang }))
            .unwrap_or_else(|_| format!("{title}: {message}"));
        (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
    }
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Unavailable(cause) => PageError::Unavailable(cause),
            ApiError::Internal(cause) => PageError::Internal(cause),
            ApiError::NotFound(_) => PageError::NotFound,
            other => PageError::BadRequest(other.problem().detail),
        }
    }
}

impl From<stackgate_store::StoreError> for PageError {
    fn from(err: stackgate_store::StoreError) -> Self {
        ApiError::from(err).into()
    }
}

impl From<stackgate_identity::IdentityError> for PageError {
    fn from(err: stackgate_identity::IdentityError) -> Self {
        ApiError::from(err).into()
    }
}

/// Unknown routes: a problem document under `/api/`, a page elsewhere.
pub(crate) async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::NotFound(format!("route {}", uri.path())).into_response()
    } else {
        PageError::NotFound.into_response()
    }
}

async fn stylesheet(State(_): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/style.css"),
    )
}

/// The organisation's accent colour, as CSS variables over the default stylesheet's.
async fn brand_stylesheet(State(state): State<AppState>) -> Response {
    let settings = state.settings();
    let Some(colour) = settings.brand_colour.as_deref() else {
        return PageError::NotFound.into_response();
    };
    // A darker shade for hover and focus, 80% of each channel.
    let darker: String = (0..3)
        .filter_map(|i| colour.get(1 + 2 * i..3 + 2 * i))
        .filter_map(|hex| u8::from_str_radix(hex, 16).ok())
        .map(|c| format!("{:02x}", u16::from(c) * 4 / 5))
        .collect();
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        format!(":root {{ --accent: {colour}; --accent-dark: #{darker}; }}\n"),
    )
        .into_response()
}

async fn logo(State(state): State<AppState>) -> Response {
    let Some(logo) = state.settings().logo.clone() else {
        return PageError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, logo.0),
            (header::CACHE_CONTROL, "public, max-age=300"),
            // An SVG opened on its own must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            ),
        ],
        logo.1.clone(),
    )
        .into_response()
}

async fn webauthn_script(State(_): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/webauthn.js"),
    )
}

/// A path on this site to return to after signing in; anything else becomes `/`.
pub(crate) fn safe_return_path(raw: Option<&str>) -> String {
    match raw {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_path;

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(
            safe_return_path(Some("/api/v1/users?x=1")),
            "/api/v1/users?x=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/a\\b",
            "javascript:alert(1)",
            "/x\ny",
        ] {
            assert_eq!(safe_return_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_path(None), "/");
    }
}
