//! `/admin/groups`: groups, their members and their sign-in policy. Every change goes through
//! [`crate::directory`], as the API's do.

use super::{
    PageError,
    admin::{admin, admin_form, confirmed, inline},
    form_page, render,
    setup::ClientInfo,
};
use crate::{
    api::{
        lookup,
        views::{GroupView, UserView},
    },
    csrf, directory,
    error::ApiError,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{Actor, Group, GroupPatch};

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn list_page(
    state: &AppState,
    jar: CookieJar,
    form: Option<&CreateForm>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let groups: Vec<GroupView> = state
        .store
        .list_groups(None, None, 500)
        .await?
        .groups
        .into_iter()
        .map(GroupView::from)
        .collect();
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_groups.html",
        minijinja::context! {
            csrf, groups, error, section => "groups",
            form => form.map(minijinja::Value::from_serialize),
        },
    )?;
    Ok(form_page(refused, jar, page))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, "/admin/groups").await? {
        return Ok(redirect);
    }
    list_page(&state, jar, None, None).await
}

pub(crate) async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<CreateForm>,
) -> Result<Response, PageError> {
    let actor =
        match admin_form(&state, &headers, &jar, &form.csrf, &client, "/admin/groups").await? {
            Ok(actor) => actor,
            Err(redirect) => return Ok(redirect),
        };
    let description = Some(form.description.trim()).filter(|d| !d.is_empty());
    match directory::create_group(&state, &actor, form.name.trim(), description).await {
        Ok(group) => {
            Ok(Redirect::to(&format!("/admin/groups/{}?done=created", group.id)).into_response())
        }
        Err(err) => {
            let error = inline(err)?;
            list_page(&state, jar, Some(&form), Some(error)).await
        }
    }
}

async fn group_page(
    state: &AppState,
    jar: CookieJar,
    group: &Group,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let members: Vec<UserView> = state
        .store
        .group_members(group.id, None, 500)
        .await?
        .into_iter()
        .map(UserView::from)
        .collect();
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_group.html",
        minijinja::context! {
            csrf, members, message, error, section => "groups",
            group => GroupView::from(group.clone()),
            more => members.len() == 500,
        },
    )?;
    Ok(form_page(refused, jar, page))
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

fn done_message(code: &str) -> Option<String> {
    Some(t(match code {
        "created" => "admin-group-created",
        "saved" => "common-saved",
        "member-added" => "admin-group-member-added",
        "member-removed" => "admin-group-member-removed",
        _ => return None,
    }))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, &format!("/admin/groups/{id}")).await? {
        return Ok(redirect);
    }
    let group = lookup::group(&state, &id).await?;
    let message = query.done.as_deref().and_then(done_message);
    group_page(&state, jar, &group, message, None).await
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mfa_policy: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    confirm: Option<String>,
}

enum Outcome {
    Redirect(&'static str),
    Deleted,
}

async fn perform(
    state: &AppState,
    actor: &Actor,
    group: &Group,
    action: &str,
    form: &ActionForm,
) -> Result<Outcome, ApiError> {
    Ok(match action {
        "settings" => {
            let patch = GroupPatch::parse(
                (!group.builtin).then_some(form.name.trim()),
                Some(form.description.trim()),
                Some(form.mfa_policy.trim()),
            )?;
            directory::update_group(state, actor, group, &patch).await?;
            Outcome::Redirect("saved")
        }
        "delete" => {
            confirmed(&form.confirm, || {
                t_args(
                    "admin-confirm-delete",
                    &[("name", group.name.as_str().into())],
                )
            })?;
            directory::delete_group(state, actor, group).await?;
            Outcome::Deleted
        }
        "add-member" => {
            let user = lookup::user(state, form.username.trim()).await?;
            directory::add_member(state, actor, group, &user).await?;
            Outcome::Redirect("member-added")
        }
        "remove-member" => {
            let user = lookup::user(state, form.username.trim()).await?;
            directory::remove_member(state, actor, group, &user).await?;
            Outcome::Redirect("member-removed")
        }
        _ => return Err(ApiError::NotFound(format!("action {action:?}"))),
    })
}

pub(crate) async fn act(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let here = format!("/admin/groups/{id}");
    let actor = match admin_form(&state, &headers, &jar, &form.csrf, &client, &here).await? {
        Ok(actor) => actor,
        Err(redirect) => return Ok(redirect),
    };
    let group = lookup::group(&state, &id).await?;
    match perform(&state, &actor, &group, &action, &form).await {
        Ok(Outcome::Redirect(code)) => {
            Ok(Redirect::to(&format!("/admin/groups/{}?done={code}", group.id)).into_response())
        }
        Ok(Outcome::Deleted) => Ok(Redirect::to("/admin/groups").into_response()),
        Err(err) => {
            let error = inline(err)?;
            let group = lookup::group(&state, &id).await?;
            group_page(&state, jar, &group, None, Some(error)).await
        }
    }
}
