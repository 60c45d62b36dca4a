//! `/clients`: OpenID Connect relying parties. Secrets are generated, shown once, stored as
//! digests.

use crate::{
    auth::Admin,
    error::{ApiError, Problem},
    extract::ApiJson,
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use stackgate_identity::{SecretToken, Target, Uuid};
use stackgate_oidc::{AuthMethod, Client, ClientKind, GrantType, NewClient, OidcError, SigningAlg};
use utoipa::ToSchema;

/// Prefix of client secrets, so that scanners recognise a leaked one.
pub const CLIENT_SECRET_PREFIX: &str = "sgs_";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    /// Public clients (single-page and native apps) have no secret and must use PKCE.
    pub public: bool,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub auth_method: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    /// `ES256` (default), `RS256` or `EdDSA`.
    pub id_token_alg: String,
    pub require_pkce: bool,
    /// First-party apps skip the consent page.
    pub first_party: bool,
    pub backchannel_logout_uri: Option<String>,
    pub frontchannel_logout_uri: Option<String>,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            id: c.id,
            name: c.name,
            public: c.kind == ClientKind::Public,
            auth_method: c.auth_method.as_str().to_owned(),
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            scopes: c.scopes,
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            access_token_ttl: c.access_token_ttl,
            refresh_token_ttl: c.refresh_token_ttl,
            id_token_alg: c.id_token_alg.as_str().to_owned(),
            require_pkce: c.require_pkce,
            first_party: c.first_party,
            backchannel_logout_uri: c.backchannel_logout_uri,
            frontchannel_logout_uri: c.frontchannel_logout_uri,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedClient {
    pub client: ClientView,
    /// Shown this once; absent for public and private_key_jwt clients.
    pub client_secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientSecret {
    pub client_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// a-z, 0-9, `-`, `_`, `.`; generated when absent.
    id: Option<String>,
    name: String,
    #[serde(default)]
    public: bool,
    auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    access_token_ttl: Option<i64>,
    refresh_token_ttl: Option<i64>,
    id_token_alg: Option<String>,
    require_pkce: Option<bool>,
    first_party: Option<bool>,
    /// The client's public keys, for `private_key_jwt`.
    #[schema(value_type = Option<Object>)]
    jwks: Option<stackgate_oidc::Jwks>,
    /// Where logout tokens are POSTed when a session of this app's user ends.
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    /// Loaded in a hidden iframe on the signed-out page.
    frontchannel_logout_uri: Option<String>,
}

fn invalid(field: &str, detail: String) -> ApiError {
    ApiError::Invalid {
        field: field.into(),
        detail,
    }
}

/// Validation messages read `field: what`; the problem document names the field.
impl From<OidcError> for ApiError {
    fn from(err: OidcError) -> Self {
        match err {
            OidcError::Key(cause) => ApiError::Internal(cause),
            other => {
                let text = other.to_string();
                match text.split_once(": ") {
                    Some((field, detail)) => invalid(field, detail.to_owned()),
                    None => invalid("client", text),
                }
            }
        }
    }
}

impl CreateClient {
    fn into_new(self) -> Result<NewClient, ApiError> {
        let auth_method = self
            .auth_method
            .map(|m| match m.as_str() {
                "client_secret_basic" => Ok(AuthMethod::ClientSecretBasic),
                "client_secret_post" => Ok(AuthMethod::ClientSecretPost),
                "private_key_jwt" => Ok(AuthMethod::PrivateKeyJwt),
                "none" => Ok(AuthMethod::None),
                other => Err(invalid("auth_method", format!("unknown method {other:?}"))),
            })
            .transpose()?;
        let grant_types = self
            .grant_types
            .map(|grants| {
                grants
                    .iter()
                    .map(|g| match g.as_str() {
                        "authorization_code" => Ok(GrantType::AuthorizationCode),
                        "refresh_token" => Ok(GrantType::RefreshToken),
                        "client_credentials" => Ok(GrantType::ClientCredentials),
                        other => Err(invalid(
                            "grant_types",
                            format!("unknown grant type {other:?}"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let id_token_alg = self
            .id_token_alg
            .map(|a| {
                SigningAlg::parse(&a).ok_or_else(|| {
                    invalid(
                        "id_token_alg",
                        format!("{a:?} is not one of ES256, RS256, EdDSA"),
                    )
                })
            })
            .transpose()?;
        Ok(NewClient {
            id: self.id,
            name: self.name,
            public: self.public,
            auth_method,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            scopes: self.scopes,
            grant_types,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            id_token_alg,
            require_pkce: self.require_pkce,
            first_party: self.first_party,
            jwks: self.jwks,
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            frontchannel_logout_uri: self.frontchannel_logout_uri,
            access: None,
        })
    }
}

/// Registers a validated client and returns it with its one-time secret (service shared by
/// the API and the CLI).
pub async fn register(
    state_store: &stackgate_store::Store,
    new: NewClient,
    actor: &stackgate_identity::Actor,
) -> Result<(Client, Option<String>), ApiError> {
    let client = new.validate(format!("client-{}", Uuid::new_v4().simple()))?;
    let secret = if client.uses_secret() {
        Some(SecretToken::generate(CLIENT_SECRET_PREFIX)?)
    } else {
        None
    };
    let entry = actor.entry("client.create", Target::System).with_detail(
        serde_json::json!({ "client": client.id, "redirect_uris": client.redirect_uris }),
    );
    state_store
        .create_client(&client, secret.as_ref().map(|s| s.hash.as_str()), &entry)
        .await?;
    Ok((client, secret.map(|s| s.plaintext)))
}

/// List OpenID Connect clients.
#[utoipa::path(get, path = "/clients", tag = "clients", responses((status = 200, body = Vec<ClientView>)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ClientView>>, ApiError> {
    let clients = state.store.list_clients().await?;
    Ok(Json(clients.into_iter().map(|c| c.client.into()).collect()))
}

/// Register a client. The response is the only time its secret is shown.
#[utoipa::path(post, path = "/clients", tag = "clients", request_body = CreateClient,
    responses((status = 201, body = CreatedClient), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateClient>,
) -> Result<impl IntoResponse, ApiError> {
    let (client, client_secret) = register(&state.store, body.into_new()?, &admin.actor).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/clients/{}", client.id))],
        Json(CreatedClient {
            client: client.into(),
            client_secret,
        }),
    ))
}

/// Show one client.
#[utoipa::path(get, path = "/clients/{id}", tag = "clients", params(("id" = String, Path, description = "Client id")),
    responses((status = 200, body = ClientView), (status = 404, body = Problem)))]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    let stored = state
        .store
        .get_client(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("client {id:?}")))?;
    Ok(Json(stored.client.into()))
}

/// Remove a client, with its grants, tokens and consents.
#[utoipa::path(delete, path = "/clients/{id}", tag = "clients", params(("id" = String, Path, description = "Client id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state.store, &id, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a client with its grants, tokens and consents (shared by the API and the console).
pub(crate) async fn remove(
    store: &stackgate_store::Store,
    id: &str,
    actor: &stackgate_identity::Actor,
) -> Result<(), ApiError> {
    let entry = actor
        .entry("client.delete", Target::System)
        .with_detail(serde_json::json!({ "client": id }));
    Ok(store.delete_client(id, &entry).await?)
}

/// Replace a confidential client's secret; the old one stops working at once.
#[utoipa::path(post, path = "/clients/{id}/secret", tag = "clients", params(("id" = String, Path, description = "Client id")),
    responses((status = 200, body = ClientSecret), (status = 404, body = Problem)))]
pub async fn rotate_secret(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientSecret>, ApiError> {
    Ok(Json(ClientSecret {
        client_secret: new_secret(&state.store, &id, &admin.actor).await?,
    }))
}

/// Replaces a client's secret and returns the new one, to be shown once (shared by the API and
/// the console).
pub(crate) async fn new_secret(
    store: &stackgate_store::Store,
    id: &str,
    actor: &stackgate_identity::Actor,
) -> Result<String, ApiError> {
    let secret = SecretToken::generate(CLIENT_SECRET_PREFIX)?;
    let entry = actor
        .entry("client.rotate_secret", Target::System)
        .with_detail(serde_json::json!({ "client": id }));
    store.set_client_secret(id, &secret.hash, &entry).await?;
    Ok(secret.plaintext)
}
