//! `/admin/apps`: the catalog with install buttons, installed apps, and an install's progress,
//! step by step. The same registry as `/api/v1/apps`; every action is audited there.

use super::{PageError, form_page, no_store, render, setup::ClientInfo};
use crate::{
    app_control::{AppControl, AppFailure, InstallRequest},
    csrf,
    i18n::t_args,
    state::AppState,
};
use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use stackgate_identity::Actor;
use stackgate_store::Session;
use std::sync::Arc;

/// The signed-in admin, or the page that says why not.
async fn admin(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Session, Response>, PageError> {
    super::admin::admin(state, headers, "/admin/apps").await
}

fn registry(state: &AppState) -> Result<&Arc<dyn AppControl>, PageError> {
    state
        .apps
        .get()
        .ok_or_else(|| PageError::Internal("the app registry is not running".into()))
}

fn failure_text(err: AppFailure) -> String {
    match err {
        AppFailure::Manifest(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

async fn list_page(
    state: &AppState,
    jar: CookieJar,
    error: Option<String>,
) -> Result<Response, PageError> {
    let apps = registry(state)?;
    let catalog = apps
        .catalog()
        .map_err(|e| PageError::Internal(failure_text(e)))?;
    let installed = apps
        .list()
        .await
        .map_err(|e| PageError::Internal(failure_text(e)))?;
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_apps.html",
        minijinja::context! { csrf, catalog, installed, error, section => "apps" },
    )?;
    Ok(form_page(refused, jar, page))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers).await? {
        return Ok(redirect);
    }
    list_page(&state, jar, None).await
}

#[derive(Deserialize)]
pub(crate) struct InstallForm {
    csrf: String,
    app: String,
    #[serde(default)]
    user_groups: String,
    #[serde(default)]
    admin_groups: String,
}

fn words(text: &str) -> Vec<String> {
    text.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) async fn install(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<InstallForm>,
) -> Result<Response, PageError> {
    let session = match admin(&state, &headers).await? {
        Ok(session) => session,
        Err(redirect) => return Ok(redirect),
    };
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let user_groups = words(&form.user_groups);
    let request = InstallRequest {
        app: form.app,
        user_groups: (!user_groups.is_empty()).then_some(user_groups),
        admin_groups: words(&form.admin_groups),
        update_policy: None,
    };
    let actor = Actor::user(session.user.id, &session.user.username, client.ip);
    match registry(&state)?.install(request, actor).await {
        Ok(view) => Ok(Redirect::to(&format!("/admin/apps/{}", view.id)).into_response()),
        // Nothing was created: the page says why, and the form is there to try again.
        Err(err) => list_page(&state, jar, Some(failure_text(err))).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ShowQuery>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers).await? {
        return Ok(redirect);
    }
    let app = registry(&state)?.status(id).await.map_err(|e| match e {
        AppFailure::NotFound(_) => PageError::NotFound,
        other => PageError::Internal(failure_text(other)),
    })?;
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = render(
        &state,
        "admin_app.html",
        minijinja::context! {
            csrf, app, section => "apps",
            saved => query.done.as_deref() == Some("access"),
        },
    )?;
    Ok(no_store(jar, page))
}

#[derive(Deserialize)]
pub(crate) struct UninstallForm {
    csrf: String,
    /// Uninstalling removes the app's data too, so the box must be ticked.
    #[serde(default)]
    confirm: Option<String>,
}

pub(crate) async fn uninstall(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(form): Form<UninstallForm>,
) -> Result<Response, PageError> {
    let session = match admin(&state, &headers).await? {
        Ok(session) => session,
        Err(redirect) => return Ok(redirect),
    };
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    if form.confirm.is_none() {
        let error = t_args(
            "admin-apps-confirm-uninstall",
            &[("app", id.as_str().into())],
        );
        return list_page(&state, jar, Some(error)).await;
    }
    let actor = Actor::user(session.user.id, &session.user.username, client.ip);
    match registry(&state)?.uninstall(id, false, actor).await {
        Ok(()) => Ok(Redirect::to("/admin/apps").into_response()),
        Err(err) => list_page(&state, jar, Some(failure_text(err))).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct AccessForm {
    csrf: String,
    #[serde(default)]
    user_groups: String,
    #[serde(default)]
    admin_groups: String,
}

/// Who reaches an app, as user or as admin: the same change as `PUT /api/v1/apps/{id}/access`,
/// which also rewrites the app's rule in the edge's policy.
pub(crate) async fn access(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(form): Form<AccessForm>,
) -> Result<Response, PageError> {
    let session = match admin(&state, &headers).await? {
        Ok(session) => session,
        Err(redirect) => return Ok(redirect),
    };
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let actor = Actor::user(session.user.id, &session.user.username, client.ip);
    let request = crate::app_control::AccessRequest {
        user_groups: words(&form.user_groups),
        admin_groups: words(&form.admin_groups),
    };
    match registry(&state)?
        .set_access(id.clone(), request, actor)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/admin/apps/{id}?done=access")).into_response()),
        Err(AppFailure::NotFound(_)) => Err(PageError::NotFound),
        Err(err) => {
            let app = registry(&state)?
                .status(id)
                .await
                .map_err(|e| PageError::Internal(failure_text(e)))?;
            let (jar, csrf) = csrf::issue(&state, jar)?;
            let error = failure_text(err);
            let page = render(
                &state,
                "admin_app.html",
                minijinja::context! { csrf, app, error, section => "apps" },
            )?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                jar,
                [(header::CACHE_CONTROL, "no-store")],
                page,
            )
                .into_response())
        }
    }
}
