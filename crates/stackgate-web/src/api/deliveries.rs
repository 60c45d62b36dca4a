//! `/logout-deliveries`: which apps were told of each sign-out, and which could not be reached.

use crate::{auth::Admin, error::ApiError, extract::ApiQuery, state::AppState};
use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub client_id: String,
    pub session_id: String,
    pub user_id: String,
    pub reason: String,
    /// `pending`, `delivered` or `failed` (after retries).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListDeliveries {
    /// How many, newest first (default 50, at most 500).
    limit: Option<u32>,
}

/// Back-channel logout deliveries, newest first.
#[utoipa::path(get, path = "/logout-deliveries", tag = "audit", params(ListDeliveries),
    responses((status = 200, body = Vec<DeliveryView>)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let records = state
        .store
        .logout_deliveries(super::page_limit(query.limit)?)
        .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| DeliveryView {
                id: r.id,
                client_id: r.client_id,
                session_id: r.session_id,
                user_id: r.user_id,
                reason: r.reason,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect(),
    ))
}
