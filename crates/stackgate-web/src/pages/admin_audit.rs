//! `/admin/audit`: the audit log with filters, and links to export what the filters select.

use super::{PageError, admin::admin, admin::urlencode, form_page, render, when};
use crate::{
    api::views::AuditView,
    csrf,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::Uuid;
use stackgate_store::AuditFilter;

const PAGE_SIZE: u32 = 100;

#[derive(Deserialize, Serialize, Default)]
pub(crate) struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default)]
    since: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<Uuid>,
}

/// A day from the filter form; `field` names the field's label (`admin-audit-since`).
fn day(text: &str, field: &str) -> Result<Option<time::Date>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), &format)
        .map(Some)
        .map_err(|_| t_args("admin-audit-bad-date", &[("field", t(field).into())]))
}

#[derive(Serialize)]
struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
    ip: String,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, "/admin/audit").await? {
        return Ok(redirect);
    }
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let dates = day(&filters.since, "admin-audit-since")
        .and_then(|since| day(&filters.until, "admin-audit-until").map(|until| (since, until)));
    let (error, rows, next) = match dates.clone() {
        Err(error) => (Some(error), Vec::new(), None),
        Ok((since, until)) => {
            let filter = AuditFilter {
                before: filters.before,
                actor: text(&filters.actor),
                action: text(&filters.action),
                target: text(&filters.target),
                since: since.map(|d| d.midnight().assume_utc().unix_timestamp()),
                until: until.map(|d| d.midnight().assume_utc().unix_timestamp() + 86_400),
                limit: PAGE_SIZE,
            };
            let records = state.store.list_audit(&filter).await?;
            let next = (records.len() == PAGE_SIZE as usize)
                .then(|| records.last().map(|r| r.id))
                .flatten();
            let rows: Vec<Row> = records
                .into_iter()
                .map(AuditView::from)
                .map(|r| Row {
                    at: when(r.at),
                    actor: r.actor,
                    action: r.action,
                    target: r.target.unwrap_or_default(),
                    detail: if r.detail.is_null() {
                        String::new()
                    } else {
                        r.detail.to_string()
                    },
                    ip: r.source_ip.unwrap_or_default(),
                })
                .collect();
            (None, rows, next)
        }
    };
    // The same selection, for the export links and the next page.
    let mut query = Vec::new();
    for (key, value) in [
        ("actor", &filters.actor),
        ("action", &filters.action),
        ("target", &filters.target),
    ] {
        if !value.trim().is_empty() {
            query.push(format!("{key}={}", urlencode(value.trim())));
        }
    }
    let export_query = {
        let mut q = query.clone();
        if let Ok((since, until)) = dates {
            if let Some(d) = since {
                q.push(format!("since={}", urlencode(&format!("{d}T00:00:00Z"))));
            }
            if let Some(d) = until.and_then(|d| d.next_day()) {
                q.push(format!("until={}", urlencode(&format!("{d}T00:00:00Z"))));
            }
        }
        q.join("&")
    };
    for (key, value) in [("since", &filters.since), ("until", &filters.until)] {
        if !value.trim().is_empty() {
            query.push(format!("{key}={}", urlencode(value.trim())));
        }
    }
    let (jar, _) = csrf::issue(&state, jar)?;
    let refused = error.is_some();
    let page = render(
        &state,
        "admin_audit.html",
        minijinja::context! {
            rows, error, filters, section => "audit",
            next => next.map(|id| id.to_string()),
            query => query.join("&"),
            export_query,
        },
    )?;
    Ok(form_page(refused, jar, page))
}
