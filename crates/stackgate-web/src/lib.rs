//! Stackgate's HTTP surface: the admin API (`/api/v1`), the setup and sign-in pages, and the
//! operations endpoints (`/healthz`, `/readyz`, `/metrics`).
//!
//! This crate is an edge: handlers extract, call the store and the identity domain, and map the
//! result. Errors become `application/problem+json` for the API and a friendly page for people,
//! each in one place ([`error`], [`pages`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod app_control;
mod audit_export;
mod auth;
mod csrf;
mod directory;
pub mod error;
mod extract;
#[doc(hidden)]
pub mod fuzzing;
mod i18n;
mod metrics;
pub mod oidc;
mod ops;
mod pages;
mod security_headers;
pub mod settings;
mod state;
pub mod throttle;

pub use metrics::{ListenerMetrics, Metrics, UpstreamMetrics};
pub use security_headers::HSTS;
pub use state::{AppState, EdgeControl, PolicyProblemView, RouteView, WebConfig};

use axum::Router;
use std::time::Duration;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, _) = api::router().split_for_parts();
    Router::new()
        .merge(ops::router())
        .merge(pages::router())
        .merge(oidc::router())
        .nest("/api/v1", api)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(pages::not_found)
        // Around everything: pages come from the page and OIDC routes and the fallback alike.
        .layer(axum::middleware::from_fn(i18n::layer))
        .layer(security_headers::layer())
        .layer(security_headers::hsts(state.config.secure_cookies()))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(
            // The path only: query strings can carry one-time secrets (setup links).
            |req: &axum::http::Request<_>| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            },
        ))
        .with_state(state)
}
