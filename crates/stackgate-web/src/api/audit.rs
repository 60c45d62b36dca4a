//! `/audit`: the audit log, newest first.

use super::{
    page_limit,
    views::{AuditPage, AuditView},
};
use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    extract::ApiQuery,
    state::AppState,
};
use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use stackgate_identity::{OffsetDateTime, Uuid};
use stackgate_store::AuditFilter;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<Uuid>,
    /// Actor name, exact.
    actor: Option<String>,
    /// Action, exact (`user.create`) or a prefix ending in `.` (`user.`).
    action: Option<String>,
    /// Target id or name.
    target: Option<String>,
    /// RFC 3339 time, inclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// RFC 3339 time, exclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
}

/// Read the audit log.
#[utoipa::path(get, path = "/audit", tag = "audit", params(ListAudit),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListAudit>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let records = state
        .store
        .list_audit(&AuditFilter {
            before: query.cursor,
            actor: query.actor,
            action: query.action,
            target: query.target,
            since: query.since.map(OffsetDateTime::unix_timestamp),
            until: query.until.map(OffsetDateTime::unix_timestamp),
            limit,
        })
        .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportAudit {
    /// `csv` or `jsonl` (JSON Lines).
    format: String,
    /// Actor name, exact.
    actor: Option<String>,
    /// Action, exact (`user.create`) or a prefix ending in `.` (`user.`).
    action: Option<String>,
    /// Target id or name.
    target: Option<String>,
    /// RFC 3339 time, inclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// RFC 3339 time, exclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
}

/// At most this many records go into one export; narrow the time range for more.
pub(crate) const EXPORT_LIMIT: usize = 100_000;

/// Export the audit records that match, newest first, as CSV or JSON Lines (at most 100,000;
/// narrow `since`/`until` for more).
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(ExportAudit),
    responses((status = 200, content_type = "text/csv", description = "CSV with a header row"),
              (status = 200, content_type = "application/jsonl", description = "One JSON object per line, as in /audit"),
              (status = 400, body = Problem)))]
pub async fn export(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExportAudit>,
) -> Result<Response, ApiError> {
    let format =
        crate::audit_export::Format::parse(&query.format).ok_or_else(|| ApiError::Invalid {
            field: "format".into(),
            detail: "use csv or jsonl".into(),
        })?;
    let filter = AuditFilter {
        before: None,
        actor: query.actor,
        action: query.action,
        target: query.target,
        since: query.since.map(OffsetDateTime::unix_timestamp),
        until: query.until.map(OffsetDateTime::unix_timestamp),
        limit: 500,
    };
    let mut views = Vec::new();
    let mut page = filter.clone();
    loop {
        let records = state.store.list_audit(&page).await?;
        let full = records.len() == page.limit as usize;
        page.before = records.last().map(|r| r.id);
        views.extend(records.into_iter().map(AuditView::from));
        if !full || views.len() >= EXPORT_LIMIT {
            break;
        }
    }
    views.truncate(EXPORT_LIMIT);
    let body = crate::audit_export::render(format, &views)?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CONTENT_DISPOSITION, format.attachment()),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
