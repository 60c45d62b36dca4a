//! `/users`: create, list, show, change, delete, set password.

use super::{
    lookup, page_limit,
    views::{UserPage, UserView, present},
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
use stackgate_identity::{Target, UserPatch};
use stackgate_store::UserFilter;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListUsers {
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Part of a username, email or display name.
    q: Option<String>,
    disabled: Option<bool>,
    /// Only members of this group (id or name).
    group: Option<String>,
}

/// List users in username order.
#[utoipa::path(get, path = "/users", tag = "users", params(ListUsers),
    responses((status = 200, body = UserPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListUsers>,
) -> Result<Json<UserPage>, ApiError> {
    let group = match &query.group {
        Some(key) => Some(lookup::group(&state, key).await?.id),
        None => None,
    };
    let listing = state
        .store
        .list_users(&UserFilter {
            after: query.cursor,
            query: query.q,
            disabled: query.disabled,
            group,
            limit: page_limit(query.limit)?,
        })
        .await?;
    Ok(Json(UserPage {
        items: listing.users.into_iter().map(UserView::from).collect(),
        next_cursor: listing.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Lower-case letters, digits, `.`, `_`, `-`; at most 64 characters.
    username: String,
    email: Option<String>,
    /// Defaults to the username.
    display_name: Option<String>,
    /// Optional: a user without a password signs in with an invitation or a passkey.
    password: Option<String>,
    /// Groups to join, by id or name.
    #[serde(default)]
    groups: Vec<String>,
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem, description = "A group does not exist"),
              (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<impl IntoResponse, ApiError> {
    let mut groups = Vec::with_capacity(body.groups.len());
    for key in &body.groups {
        groups.push(lookup::group(&state, key).await?);
    }
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let user = directory::create_user(
        &state,
        &admin.actor,
        directory::NewPerson {
            username: &body.username,
            email: body.email.as_deref(),
            display_name: body.display_name.as_deref(),
            password: body.password,
            groups,
        },
    )
    .await?;
    let mut view = UserView::from(user);
    view.groups = Some(names);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/users/{}", view.id))],
        Json(view),
    ))
}

/// Show one user, with their groups.
#[utoipa::path(get, path = "/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = UserView), (status = 404, body = Problem)))]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let groups = state.store.groups_of(user.id).await?;
    let mut view = UserView::from(user);
    view.groups = Some(groups.into_iter().map(|g| g.name).collect());
    Ok(Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `null` clears the email.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    email: Option<Option<String>>,
    display_name: Option<String>,
    /// Disabled users cannot sign in; their API tokens and sessions stop working.
    disabled: Option<bool>,
}

/// Change a user's email, display name or disabled flag.
#[utoipa::path(patch, path = "/users/{user}", tag = "users", request_body = UpdateUser,
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = UserView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let patch = UserPatch::parse(
        body.email.as_ref().map(|e| e.as_deref()),
        body.display_name.as_deref(),
        body.disabled,
    )?;
    let updated = directory::update_user(&state, &admin.actor, &user, &patch).await?;
    Ok(Json(updated.into()))
}

/// Delete a user, with their memberships, tokens and sessions.
#[utoipa::path(delete, path = "/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "The last admin")))]
pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = lookup::user(&state, &key).await?;
    directory::delete_user(&state, &admin.actor, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    password: String,
}

/// Set a user's password.
#[utoipa::path(put, path = "/users/{user}/password", tag = "users", request_body = SetPassword,
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_password(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let hash = state.hasher.hash(body.password, &user.username).await?;
    let entry = admin.actor.entry(
        "user.set_password",
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    );
    state.store.set_password(user.id, &hash, &entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SignedOffView {
    /// Sessions ended.
    pub sessions_ended: usize,
    /// Apps sent a logout token.
    pub apps_notified: Vec<String>,
}

/// Sign a user out everywhere: every session ends, every app that holds one is told.
#[utoipa::path(post, path = "/users/{user}/sign-out", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses((status = 200, body = SignedOffView), (status = 404, body = Problem)))]
pub async fn sign_out(
    admin: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SignedOffView>, ApiError> {
    let user = lookup::user(&state, &key).await?;
    let done =
        directory::sign_out_user(&state, &admin.actor, &user, "signed out by an admin").await?;
    Ok(Json(SignedOffView {
        sessions_ended: done.sessions_ended,
        apps_notified: done.apps_notified,
    }))
}
