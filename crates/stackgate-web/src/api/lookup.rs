//! Path segments name users and groups by id or by name, whichever the caller has.

use crate::{error::ApiError, state::AppState};
use stackgate_identity::{Group, User, Uuid};

pub(crate) async fn user(state: &AppState, key: &str) -> Result<User, ApiError> {
    match Uuid::parse_str(key) {
        Ok(id) => Ok(state.store.get_user(id).await?),
        Err(_) => state
            .store
            .find_user(key)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("user {key:?}"))),
    }
}

pub(crate) async fn group(state: &AppState, key: &str) -> Result<Group, ApiError> {
    match Uuid::parse_str(key) {
        Ok(id) => Ok(state.store.get_group(id).await?),
        Err(_) => state
            .store
            .find_group(key)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("group {key:?}"))),
    }
}
