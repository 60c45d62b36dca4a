//! `/users/{user}/consents`: which third-party apps a user allowed, and withdrawing that.

use super::lookup;
use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use stackgate_identity::{OffsetDateTime, Target};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    pub scope: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: OffsetDateTime,
}

/// The apps a user has consented to.
#[utoipa::path(get, path = "/users/{user}/consents", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = Vec<ConsentView>), (status = 404, body = Problem)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Vec<ConsentView>>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let consents = state.store.consents_of(user.id).await?;
    Ok(Json(
        consents
            .into_iter()
            .map(|(client_id, scope, at)| ConsentView {
                client_id,
                scope,
                granted_at: OffsetDateTime::from_unix_timestamp(at)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
            .collect(),
    ))
}

/// Withdraw a consent; the app's tokens for this user stop working and it must ask again.
#[utoipa::path(delete, path = "/users/{user}/consents/{client}", tag = "users",
    params(("user" = String, Path, description = "User id or username"), ("client" = String, Path, description = "Client id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    Path((key, client)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let entry = admin
        .actor
        .entry(
            "consent.revoke",
            Target::User {
                id: user.id,
                name: user.username.clone(),
            },
        )
        .with_detail(serde_json::json!({ "client": client }));
    state.store.revoke_consent(user.id, &client, &entry).await?;
    Ok(StatusCode::NO_CONTENT)
}
