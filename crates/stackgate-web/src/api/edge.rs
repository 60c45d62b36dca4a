//! `/proxy/routes` and `/access-policy`: what the edge proxy publishes and who may reach it.
//! Both answer 404 when the edge is not running (no `proxy_listen`).

use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    extract::ApiJson,
    state::{AppState, EdgeControl, PolicyProblemView, RouteView},
};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use stackgate_identity::{Target, Uuid};
use stackgate_store::NewRoute;
use std::sync::Arc;
use utoipa::ToSchema;

/// Puts a stored change in force on this replica before answering.
async fn reload(edge: &Arc<dyn EdgeControl>) -> Result<(), ApiError> {
    edge.reload().await.map_err(|e| {
        ApiError::Internal(format!(
            "the change is stored but the edge cannot reload: {e}"
        ))
    })
}

fn edge(state: &AppState) -> Result<&Arc<dyn EdgeControl>, ApiError> {
    state
        .edge
        .get()
        .ok_or_else(|| ApiError::NotFound("the edge proxy (set proxy_listen)".into()))
}

/// Every route in force.
#[utoipa::path(get, path = "/proxy/routes", tag = "proxy",
    responses((status = 200, body = [RouteView]), (status = 404, body = Problem)))]
pub async fn list_routes(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<RouteView>>, ApiError> {
    Ok(Json(edge(&state)?.routes()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    /// The host name people open, e.g. `wiki.example.org`.
    host: String,
    /// Only paths under this prefix (default `/`).
    path_prefix: Option<String>,
    /// `http://host:port` of the app.
    upstream: String,
    /// The app's id in access policies (`App::"<app>"`).
    app: String,
    /// Groups that may reach the app.
    #[serde(default)]
    groups: Vec<String>,
    /// Path prefixes reachable without signing in.
    #[serde(default)]
    public_paths: Vec<String>,
    /// Tell the app each person's role in a header.
    #[serde(default)]
    roles: Option<RouteRolesBody>,
}

/// The role header of an app behind the edge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRolesBody {
    header: String,
    /// The value for members of `groups`.
    user: String,
    /// The value for Stackgate's admins and `admin_groups`.
    admin: String,
    #[serde(default)]
    admin_groups: Vec<String>,
}

/// Publish an app through the edge, at once on every replica.
#[utoipa::path(post, path = "/proxy/routes", tag = "proxy", request_body = CreateRoute,
    responses((status = 201, body = RouteView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_route(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateRoute>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    let new = NewRoute {
        host: body.host.trim().to_ascii_lowercase(),
        path_prefix: body.path_prefix.unwrap_or_else(|| "/".into()),
        upstream: body.upstream,
        app: body.app,
        groups: body.groups,
        public_paths: body.public_paths,
        roles: body.roles.map(|r| stackgate_store::RouteRoles {
            header: r.header,
            user: r.user,
            admin: r.admin,
            admin_groups: r.admin_groups,
        }),
    };
    for group in &new.groups {
        if stackgate_identity::group_name(group).ok().as_deref() != Some(group.as_str()) {
            return Err(ApiError::Invalid {
                field: "groups".into(),
                detail: format!(
                    "{group:?} is not a group name (lower-case letters, digits, '.', '_', '-')"
                ),
            });
        }
    }
    if edge
        .routes()
        .iter()
        .any(|r| r.host == new.host.trim_end_matches('.') && r.path_prefix == new.path_prefix)
    {
        return Err(ApiError::Conflict {
            detail: "a route for this host and path prefix exists already".into(),
            field: Some("host".into()),
        });
    }
    let new = edge.check_route(&new).map_err(|detail| ApiError::Invalid {
        field: "route".into(),
        detail,
    })?;
    let entry = admin
        .actor
        .entry("proxy.route.create", Target::System)
        .with_detail(json!({
            "host": new.host, "path_prefix": new.path_prefix, "upstream": new.upstream,
            "app": new.app, "groups": new.groups,
        }));
    let stored = state.store.add_proxy_route(&new, &entry).await?;
    reload(edge).await?;
    let view = RouteView {
        id: Some(stored.id.to_string()),
        host: stored.host,
        path_prefix: stored.path_prefix,
        upstream: stored.upstream,
        app: stored.app,
        groups: stored.groups,
        public_paths: stored.public_paths,
        role_header: stored.roles.map(|r| r.header),
        source: "runtime",
    };
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/proxy/routes/{}", stored.id),
        )],
        Json(view),
    )
        .into_response())
}

/// Stop publishing a route added at runtime.
#[utoipa::path(delete, path = "/proxy/routes/{id}", tag = "proxy",
    params(("id" = String, Path, description = "Route id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_route(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let edge = edge(&state)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("route".into()))?;
    let entry = admin
        .actor
        .entry("proxy.route.delete", Target::System)
        .with_detail(json!({ "route": id }));
    if state.store.remove_proxy_route(id, &entry).await? {
        reload(edge).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("route".into()))
    }
}

/// The access policy: the admins' own text, and what it is compiled with.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPolicyView {
    /// The admins' own Cedar policies.
    text: String,
    /// The defaults shipped with Stackgate.
    defaults: String,
    /// One rule per route, from its groups.
    generated: String,
    /// The Cedar schema every policy is validated against.
    schema: String,
}

/// Read the access policy.
#[utoipa::path(get, path = "/access-policy", tag = "proxy",
    responses((status = 200, body = AccessPolicyView), (status = 404, body = Problem)))]
pub async fn show_policy(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<AccessPolicyView>, ApiError> {
    let edge = edge(&state)?;
    let (defaults, generated) = edge.builtin_policies();
    Ok(Json(AccessPolicyView {
        text: state.store.access_policy().await?,
        defaults,
        generated,
        schema: edge.schema().to_owned(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// Cedar policies, validated against the schema.
    text: String,
}

/// Why a policy was refused: every problem, with its line and column.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyRejected {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    problems: Vec<PolicyProblemView>,
}

/// Replace the admins' policies. A text that does not validate is refused and the policy in force
/// stays as it was.
#[utoipa::path(put, path = "/access-policy", tag = "proxy", request_body = UpdatePolicy,
    responses((status = 200, body = AccessPolicyView), (status = 404, body = Problem), (status = 422, body = PolicyRejected)))]
pub async fn update_policy(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UpdatePolicy>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    if let Err(problems) = save_policy(&state, &admin.actor, &body.text).await? {
        let detail = problems
            .iter()
            .map(PolicyProblemView::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/problem+json")],
            Json(PolicyRejected {
                kind: "urn:stackgate:problem:invalid-policy",
                title: "The policy is not valid",
                status: 422,
                detail,
                problems,
            }),
        )
            .into_response());
    }
    let (defaults, generated) = edge.builtin_policies();
    Ok(Json(AccessPolicyView {
        text: body.text,
        defaults,
        generated,
        schema: edge.schema().to_owned(),
    })
    .into_response())
}

/// Replaces the admins' policy text when it validates with the routes in force, and puts it in
/// force at once; otherwise returns every problem and changes nothing. For the API and the
/// admin console alike.
pub(crate) async fn save_policy(
    state: &AppState,
    actor: &stackgate_identity::Actor,
    text: &str,
) -> Result<Result<(), Vec<PolicyProblemView>>, ApiError> {
    const MAX_POLICY_BYTES: usize = 256 * 1024;
    let edge = edge(state)?;
    if text.len() > MAX_POLICY_BYTES {
        return Err(ApiError::Invalid {
            field: "text".into(),
            detail: format!("at most {MAX_POLICY_BYTES} bytes"),
        });
    }
    if let Err(problems) = edge.check_policy(text) {
        return Ok(Err(problems));
    }
    let entry = actor
        .entry("access_policy.update", Target::System)
        .with_detail(json!({ "bytes": text.len() }));
    state.store.set_access_policy(text, &entry).await?;
    reload(edge).await?;
    Ok(Ok(()))
}

/// The edge, or why there is none.
pub(crate) fn edge_of(state: &AppState) -> Result<&Arc<dyn EdgeControl>, ApiError> {
    edge(state)
}
