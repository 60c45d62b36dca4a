//! The admin API under `/api/v1`. Every route is registered through [`utoipa_axum::routes!`], so
//! the router and the OpenAPI document are built from the same list and cannot drift apart.

mod apps;
mod audit;
pub mod clients;
mod consents;
mod deliveries;
pub(crate) mod edge;
mod groups;
pub(crate) mod lookup;
mod settings;
pub mod tokens;
mod user_security;
mod users;
pub(crate) mod views;

use crate::state::AppState;
use axum::{Json, response::IntoResponse};
use std::sync::LazyLock;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use views::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stackgate admin API",
        version = "1",
        description = "Users, groups, API tokens and the audit log. Errors are RFC 9457 problem documents."
    ),
    servers((url = "/api/v1")),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "users"), (name = "groups"), (name = "tokens"), (name = "audit"), (name = "clients"), (name = "proxy"), (name = "apps"), (name = "settings"), (name = "meta")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgt_…")
                    .description(Some("An API token created by an admin"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("stackgate_session"))),
        );
    }
}

/// The API's routes and their OpenAPI description, from one list.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::set_password))
        .routes(routes!(users::sign_out))
        .routes(routes!(user_security::invite))
        .routes(routes!(user_security::password_reset))
        .routes(routes!(user_security::reset_mfa))
        .routes(routes!(user_security::second_factors))
        .routes(routes!(user_security::sessions))
        .routes(routes!(deliveries::list))
        .routes(routes!(groups::list, groups::create))
        .routes(routes!(groups::show, groups::update, groups::delete))
        .routes(routes!(groups::members))
        .routes(routes!(groups::add_member, groups::remove_member))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .routes(routes!(settings::show, settings::update))
        .routes(routes!(clients::list, clients::create))
        .routes(routes!(clients::show, clients::delete))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(consents::list))
        .routes(routes!(consents::revoke))
        .routes(routes!(edge::list_routes, edge::create_route))
        .routes(routes!(edge::delete_route))
        .routes(routes!(edge::show_policy, edge::update_policy))
        .routes(routes!(apps::catalog))
        .routes(routes!(apps::validate))
        .routes(routes!(apps::list, apps::install))
        .routes(routes!(apps::show, apps::uninstall))
        .routes(routes!(apps::set_access))
        .routes(routes!(apps::upgrade))
        .routes(routes!(apps::apply_updates))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().split_for_parts().1
}

static DOCUMENT: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::to_value(openapi()).unwrap_or_default());

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    Json(DOCUMENT.clone())
}

/// Default and largest page sizes for every list.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 500;

pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, crate::error::ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(crate::error::ApiError::BadRequest {
            detail: format!("limit: must be between 1 and {MAX_LIMIT}"),
            field: Some("limit".into()),
        }),
    }
}

/// Names of the JSON bodies [`parse_body`] reads, in the order of its `kind`.
pub(crate) const BODIES: &[&str] = &[
    "CreateUser",
    "UpdateUser",
    "SetPassword",
    "CreateGroup",
    "UpdateGroup",
    "CreateToken",
    "CreateClient",
    "CreateRoute",
    "UpdatePolicy",
    "ValidateManifest",
    "InstallRequest",
    "AccessRequest",
    "UpgradeRequest",
    "UpdateSettings",
];

/// One of the JSON bodies the API reads (`kind` indexes [`BODIES`], wrapping), parsed as its
/// handler parses it. For the fuzz target `api_json`.
pub(crate) fn parse_body(kind: usize, body: &[u8]) -> Result<(), crate::error::ApiError> {
    use crate::{app_control as control, extract::parse_json};
    match kind % BODIES.len() {
        0 => parse_json::<users::CreateUser>(body).map(drop),
        1 => parse_json::<users::UpdateUser>(body).map(drop),
        2 => parse_json::<users::SetPassword>(body).map(drop),
        3 => parse_json::<groups::CreateGroup>(body).map(drop),
        4 => parse_json::<groups::UpdateGroup>(body).map(drop),
        5 => parse_json::<tokens::CreateToken>(body).map(drop),
        6 => parse_json::<clients::CreateClient>(body).map(drop),
        7 => parse_json::<edge::CreateRoute>(body).map(drop),
        8 => parse_json::<edge::UpdatePolicy>(body).map(drop),
        9 => parse_json::<apps::ValidateManifest>(body).map(drop),
        10 => parse_json::<control::InstallRequest>(body).map(drop),
        11 => parse_json::<control::AccessRequest>(body).map(drop),
        12 => parse_json::<control::UpgradeRequest>(body).map(drop),
        _ => parse_json::<settings::UpdateSettings>(body).map(drop),
    }
}
