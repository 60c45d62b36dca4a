//! `/apps`: the catalog, installing and removing apps, and who reaches them. Answers 404 when
//! the registry is not running.

use crate::{
    app_control::{
        AccessRequest, AppControl, AppFailure, AppView, CatalogEntryView, InstallRequest,
        ManifestProblemView, PlanView, UpdateView, UpgradeRequest,
    },
    auth::Admin,
    error::{ApiError, Problem},
    extract::ApiJson,
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

fn apps(state: &AppState) -> Result<&Arc<dyn AppControl>, ApiError> {
    state
        .apps
        .get()
        .ok_or_else(|| ApiError::NotFound("the app registry".into()))
}

/// A refused manifest: every problem, with its line and column.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManifestRejected {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    problems: Vec<ManifestProblemView>,
}

fn failure(err: AppFailure) -> Response {
    let api = match err {
        AppFailure::Manifest(problems) => {
            let detail = problems
                .iter()
                .map(|p| match (p.line, p.column) {
                    (Some(l), Some(c)) => {
                        format!("line {l}, column {c}: {}: {}", p.field, p.message)
                    }
                    _ => format!("{}: {}", p.field, p.message),
                })
                .collect::<Vec<_>>()
                .join("; ");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                [(header::CONTENT_TYPE, "application/problem+json")],
                Json(ManifestRejected {
                    kind: "urn:stackgate:problem:invalid-manifest",
                    title: "The manifest is not valid",
                    status: 422,
                    detail,
                    problems,
                }),
            )
                .into_response();
        }
        AppFailure::NotFound(what) => ApiError::NotFound(what),
        AppFailure::Invalid { field, detail } => ApiError::Invalid { field, detail },
        AppFailure::Conflict(detail) => ApiError::Conflict {
            detail,
            field: Some("app".into()),
        },
        AppFailure::Step { step, reason } => ApiError::Conflict {
            detail: format!("step {step} failed: {reason}; every step before it was undone"),
            field: None,
        },
        AppFailure::Internal(cause) => ApiError::Internal(cause),
        AppFailure::Incomplete(left) => ApiError::Incomplete(left),
    };
    api.into_response()
}

/// The apps that can be installed.
#[utoipa::path(get, path = "/apps/catalog", tag = "apps",
    responses((status = 200, body = [CatalogEntryView]), (status = 404, body = Problem)))]
pub async fn catalog(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(match apps(&state)?.catalog() {
        Ok(entries) => Json(entries).into_response(),
        Err(err) => failure(err),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateManifest {
    /// The manifest's YAML text.
    manifest: String,
}

/// Check an app manifest: its shape against the schema, then its meaning. Every problem comes
/// with its line and column.
#[utoipa::path(post, path = "/apps/validate", tag = "apps", request_body = ValidateManifest,
    responses((status = 200, body = CatalogEntryView), (status = 422, body = ManifestRejected)))]
pub async fn validate(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ValidateManifest>,
) -> Result<Response, ApiError> {
    Ok(match apps(&state)?.validate(&body.manifest) {
        Ok(entry) => Json(entry).into_response(),
        Err(err) => failure(err),
    })
}

/// Installed apps, and installs in progress or failed.
#[utoipa::path(get, path = "/apps", tag = "apps",
    responses((status = 200, body = [AppView]), (status = 404, body = Problem)))]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(match apps(&state)?.list().await {
        Ok(views) => Json(views).into_response(),
        Err(err) => failure(err),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InstallQuery {
    /// Only show what would be created.
    #[serde(default)]
    dry_run: bool,
}

/// Install an app from the catalog. Answers 202 at once; follow `GET /apps/{id}` for each
/// step. A failing step undoes every step before it. With `dry_run`, answers the plan.
#[utoipa::path(post, path = "/apps", tag = "apps", request_body = InstallRequest, params(InstallQuery),
    responses((status = 202, body = AppView), (status = 200, body = PlanView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn install(
    admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<InstallQuery>,
    ApiJson(body): ApiJson<InstallRequest>,
) -> Result<Response, ApiError> {
    let apps = apps(&state)?;
    if query.dry_run {
        return Ok(match apps.plan(body).await {
            Ok(plan) => Json(plan).into_response(),
            Err(err) => failure(err),
        });
    }
    Ok(match apps.install(body, admin.actor).await {
        Ok(view) => (
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/v1/apps/{}", view.id))],
            Json(view),
        )
            .into_response(),
        Err(err) => failure(err),
    })
}

/// One app and its install's progress.
#[utoipa::path(get, path = "/apps/{id}", tag = "apps", params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = AppView), (status = 404, body = Problem)))]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match apps(&state)?.status(id).await {
        Ok(view) => Json(view).into_response(),
        Err(err) => failure(err),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UninstallQuery {
    /// Also delete the app's data volumes.
    #[serde(default)]
    purge: bool,
}

/// Uninstall an app: its OIDC client (and the tokens issued to it), secrets, workloads, route
/// and policy. Data volumes stay unless `purge`.
#[utoipa::path(delete, path = "/apps/{id}", tag = "apps", params(("id" = String, Path, description = "App id"), UninstallQuery),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 500, description = "Uninstalled, but some parts could not be removed: the detail names them", body = Problem)))]
pub async fn uninstall(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<UninstallQuery>,
) -> Result<Response, ApiError> {
    Ok(
        match apps(&state)?.uninstall(id, query.purge, admin.actor).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(err) => failure(err),
        },
    )
}

/// Set which groups reach an app as users and as admins. In force at the edge when this
/// answers.
#[utoipa::path(put, path = "/apps/{id}/access", tag = "apps", request_body = AccessRequest,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = AppView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_access(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccessRequest>,
) -> Result<Response, ApiError> {
    Ok(
        match apps(&state)?.set_access(id, body, admin.actor).await {
            Ok(view) => Json(view).into_response(),
            Err(err) => failure(err),
        },
    )
}

/// Move an app to a newer catalog version (the newest unless `version` is given). When the new
/// version is not ready in time, the old one is put back and the answer is 409 saying so.
#[utoipa::path(post, path = "/apps/{id}/upgrade", tag = "apps", request_body = UpgradeRequest,
    params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = AppView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn upgrade(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpgradeRequest>,
) -> Result<Response, ApiError> {
    Ok(
        match apps(&state)?.upgrade(id, body.version, admin.actor).await {
            Ok(view) => Json(view).into_response(),
            Err(err) => failure(err),
        },
    )
}

/// Apply every app's update policy now (the server also does it on its own, every
/// `apps_update_interval` seconds).
#[utoipa::path(post, path = "/apps/updates", tag = "apps",
    responses((status = 200, body = [UpdateView]), (status = 404, body = Problem)))]
pub async fn apply_updates(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(match apps(&state)?.apply_updates().await {
        Ok(done) => Json(done).into_response(),
        Err(err) => failure(err),
    })
}
