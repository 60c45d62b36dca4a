//! `/admin/policy`: the edge's access policy in Cedar. The rules Stackgate writes (the defaults,
//! and one per app from its groups) are shown for reading; admins edit their own rules, which
//! are checked against the schema and the routes before they replace the ones in force.

use super::{
    PageError,
    admin::{admin, admin_form, inline},
    form_page, no_store, render,
    setup::ClientInfo,
};
use crate::{api::edge::edge_of, csrf, state::AppState};
use axum::{
    Form,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

async fn policy_page(
    state: &AppState,
    jar: CookieJar,
    text: Option<String>,
    problems: Vec<String>,
    error: Option<String>,
    saved: bool,
) -> Result<Response, PageError> {
    let (jar, csrf) = csrf::issue(state, jar)?;
    let Ok(edge) = edge_of(state) else {
        let page = render(
            state,
            "admin_policy.html",
            minijinja::context! { csrf, section => "apps", off => true },
        )?;
        return Ok(no_store(jar, page));
    };
    let (defaults, generated) = edge.builtin_policies();
    let text = match text {
        Some(text) => text,
        None => state.store.access_policy().await?,
    };
    let refused = !problems.is_empty() || error.is_some();
    let page = render(
        state,
        "admin_policy.html",
        minijinja::context! {
            csrf, text, defaults, generated, problems, error, saved,
            schema => edge.schema(),
            section => "apps",
        },
    )?;
    Ok(form_page(refused, jar, page))
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<ShowQuery>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, "/admin/policy").await? {
        return Ok(redirect);
    }
    policy_page(&state, jar, None, Vec::new(), None, query.saved.is_some()).await
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    csrf: String,
    #[serde(default)]
    text: String,
}

pub(crate) async fn save(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PageError> {
    let actor =
        match admin_form(&state, &headers, &jar, &form.csrf, &client, "/admin/policy").await? {
            Ok(actor) => actor,
            Err(redirect) => return Ok(redirect),
        };
    // Browsers send textarea lines with CRLF; Cedar positions count the text as typed.
    let text = form.text.replace("\r\n", "\n");
    match crate::api::edge::save_policy(&state, &actor, &text).await {
        Ok(Ok(())) => Ok(Redirect::to("/admin/policy?saved=1").into_response()),
        Ok(Err(problems)) => {
            let problems = problems
                .iter()
                .map(|p| format!("{} ({})", p, p.source))
                .collect();
            policy_page(&state, jar, Some(text), problems, None, false).await
        }
        Err(err) => {
            let error = inline(err)?;
            policy_page(&state, jar, Some(text), Vec::new(), Some(error), false).await
        }
    }
}
