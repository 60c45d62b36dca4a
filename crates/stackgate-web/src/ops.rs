//! Liveness, readiness and metrics, for orchestrators and monitoring.

use crate::{error::ApiError, state::AppState};
use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use std::time::Duration;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Alive: the process answers. Says nothing about the database on purpose, so an outage of the
/// database does not get every replica restarted.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "alive" }))
}

/// Ready: the database answers within two seconds.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({
            "status": "ready",
            "database": state.store.backend().name(),
        }))),
        Ok(Err(err)) => Err(ApiError::Unavailable(err.to_string())),
        Err(_) => Err(ApiError::Unavailable("database ping timed out".into())),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state
            .metrics
            .render(state.store.pool_stats(), state.store.session_watch_status()),
    )
}
