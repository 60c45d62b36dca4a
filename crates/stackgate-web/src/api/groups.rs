//! `/groups`: create, list, show, rename, delete, and members.

use super::{
    lookup, page_limit,
    views::{GroupPage, GroupView, UserView},
};
use crate::{
    auth::Admin,
    directory,
    error::{ApiError, Problem},
    extract::{ApiJson, ApiQuery},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Deserialize;
use stackgate_identity::GroupPatch;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListGroups {
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Part of a name or description.
    q: Option<String>,
}

/// List groups in name order.
#[utoipa::path(get, path = "/groups", tag = "groups", params(ListGroups),
    responses((status = 200, body = GroupPage), (status = 400, body = Problem)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListGroups>,
) -> Result<Json<GroupPage>, ApiError> {
    let listing = state
        .store
        .list_groups(
            query.cursor.as_deref(),
            query.q.as_deref(),
            page_limit(query.limit)?,
        )
        .await?;
    Ok(Json(GroupPage {
        items: listing.groups.into_iter().map(GroupView::from).collect(),
        next_cursor: listing.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Lower-case letters, digits, `.`, `_`, `-`; at most 64 characters.
    name: String,
    description: Option<String>,
}

/// Create a group.
#[utoipa::path(post, path = "/groups", tag = "groups", request_body = CreateGroup,
    responses((status = 201, body = GroupView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateGroup>,
) -> Result<impl IntoResponse, ApiError> {
    let group = directory::create_group(
        &state,
        &admin.actor,
        &body.name,
        body.description.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/groups/{}", group.id))],
        Json(GroupView::from(group)),
    ))
}

/// Show one group.
#[utoipa::path(get, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id or name")),
    responses((status = 200, body = GroupView), (status = 404, body = Problem)))]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(lookup::group(&state, &key).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    name: Option<String>,
    description: Option<String>,
    /// What its members' sign-ins must use: `optional`, `required` (any second factor) or
    /// `phishing_resistant` (a passkey or security key).
    mfa_policy: Option<String>,
}

/// Rename a group, change its description or its members' sign-in policy.
#[utoipa::path(patch, path = "/groups/{group}", tag = "groups", request_body = UpdateGroup,
    params(("group" = String, Path, description = "Group id or name")),
    responses((status = 200, body = GroupView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> Result<Json<GroupView>, ApiError> {
    let group = lookup::group(&state, &key).await?;
    let patch = GroupPatch::parse(
        body.name.as_deref(),
        body.description.as_deref(),
        body.mfa_policy.as_deref(),
    )?;
    Ok(Json(
        directory::update_group(&state, &admin.actor, &group, &patch)
            .await?
            .into(),
    ))
}

/// Delete a group and its memberships.
#[utoipa::path(delete, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id or name")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "A built-in group")))]
pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let group = lookup::group(&state, &key).await?;
    directory::delete_group(&state, &admin.actor, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListMembers {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// List a group's members in username order.
#[utoipa::path(get, path = "/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "Group id or name"), ListMembers),
    responses((status = 200, body = super::views::UserPage), (status = 404, body = Problem)))]
pub async fn members(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(query): ApiQuery<ListMembers>,
) -> Result<Json<super::views::UserPage>, ApiError> {
    let group = lookup::group(&state, &key).await?;
    let limit = page_limit(query.limit)?;
    let users = state
        .store
        .group_members(group.id, query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.username.clone()))
        .flatten();
    Ok(Json(super::views::UserPage {
        items: users.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// Add a user to a group (idempotent).
#[utoipa::path(put, path = "/groups/{group}/members/{user}", tag = "groups",
    params(("group" = String, Path, description = "Group id or name"), ("user" = String, Path, description = "User id or username")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn add_member(
    admin: Admin,
    State(state): State<AppState>,
    Path((group_key, user_key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let group = lookup::group(&state, &group_key).await?;
    let user = lookup::user(&state, &user_key).await?;
    directory::add_member(&state, &admin.actor, &group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user from a group. The last enabled admin cannot leave `admins`.
#[utoipa::path(delete, path = "/groups/{group}/members/{user}", tag = "groups",
    params(("group" = String, Path, description = "Group id or name"), ("user" = String, Path, description = "User id or username")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_member(
    admin: Admin,
    State(state): State<AppState>,
    Path((group_key, user_key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let group = lookup::group(&state, &group_key).await?;
    let user = lookup::user(&state, &user_key).await?;
    directory::remove_member(&state, &admin.actor, &group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
