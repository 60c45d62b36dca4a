//! `/tokens`: API tokens, created for a user, shown once, revocable.

use super::{
    lookup,
    views::{CreatedToken, TokenView},
};
use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    extract::{ApiJson, ApiQuery},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use serde_json::json;
use stackgate_identity::{SecretToken, Target, Uuid};
use utoipa::{IntoParams, ToSchema};

/// Prefix of every API token, so that secret scanners recognise a leaked one.
pub const TOKEN_PREFIX: &str = "sgt_";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListTokens {
    /// Only this user's tokens (id or username).
    user: Option<String>,
}

/// List API tokens (never their secrets), newest first.
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(ListTokens),
    responses((status = 200, body = Vec<TokenView>)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTokens>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let user = match &query.user {
        Some(key) => Some(lookup::user(&state, key).await?.id),
        None => None,
    };
    let tokens = state.store.list_api_tokens(user).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `backup script`; unique per user.
    name: String,
    /// Whose token it is (id or username); defaults to the caller. The token has that user's rights.
    user: Option<String>,
    /// Days until it stops working, 1 to 3650; no expiry when absent.
    expires_in_days: Option<u32>,
}

/// Create an API token. The response is the only time the secret is shown.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<impl IntoResponse, ApiError> {
    let name = token_name(&body.name)?;
    let owner = match &body.user {
        Some(key) => lookup::user(&state, key).await?,
        None => admin.user.clone(),
    };
    // A token for another admin would let one admin act, and be audited, as another.
    if owner.id != admin.user.id && state.store.is_admin(owner.id).await? {
        return Err(ApiError::Forbidden(
            "tokens for another admin can only be created by that admin".into(),
        ));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(state.clock.unix() + i64::from(days) * 86_400),
        Some(_) => {
            return Err(ApiError::Invalid {
                field: "expires_in_days".into(),
                detail: "must be between 1 and 3650".into(),
            });
        }
    };
    let secret = SecretToken::generate(TOKEN_PREFIX)?;
    let id = Uuid::new_v4();
    let entry = admin
        .actor
        .entry(
            "token.create",
            Target::ApiToken {
                id,
                name: name.clone(),
            },
        )
        .with_detail(json!({ "user": owner.username, "expires_at": expires_at }));
    let token = state
        .store
        .create_api_token(id, owner.id, &name, &secret.hash, expires_at, &entry)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret.plaintext,
            info: token.into(),
        }),
    ))
}

/// Revoke an API token; it stops working at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already revoked")))]
pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("token".into()))?;
    let token = state.store.get_api_token(id).await?;
    let entry = admin
        .actor
        .entry(
            "token.revoke",
            Target::ApiToken {
                id,
                name: token.name,
            },
        )
        .with_detail(json!({ "user": token.username }));
    state.store.revoke_api_token(id, &entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Token names are free text, short and printable.
pub fn token_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            field: "name".into(),
            detail: "must be 1 to 64 printable characters".into(),
        });
    }
    Ok(name.to_owned())
}
