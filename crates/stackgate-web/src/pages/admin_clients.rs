//! `/admin/clients`: OpenID Connect clients for apps that are not in the catalog (installed
//! apps get theirs from the registry). Registered, listed, removed, and their secrets replaced,
//! through the same code as `/api/v1/clients`; a secret is shown once, on the page that made it.

use super::{
    PageError,
    admin::{admin, admin_form, inline},
    form_page, render,
    setup::ClientInfo,
};
use crate::{
    api::clients::{self, ClientView},
    csrf,
    i18n::t_args,
    state::AppState,
};
use axum::{
    Form,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_oidc::NewClient;

/// A client as the list shows it: whether an installed app owns it.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    client: ClientView,
    app: bool,
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// One per line.
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    backchannel_logout_uri: String,
    /// `confidential` or `public`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    first_party: Option<String>,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What to show once: a new client's id and secret.
#[derive(Serialize)]
struct Shown {
    id: String,
    secret: Option<String>,
}

async fn clients_page(
    state: &AppState,
    jar: CookieJar,
    form: Option<&RegisterForm>,
    shown: Option<Shown>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let mut listed = Vec::new();
    for stored in state.store.list_clients().await? {
        let app = state
            .store
            .installed_app(&stored.client.id)
            .await?
            .is_some();
        listed.push(Listed {
            client: stored.client.into(),
            app,
        });
    }
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_clients.html",
        minijinja::context! {
            csrf, error, shown, section => "apps",
            clients => listed,
            issuer => &state.config.issuer,
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
    if let Err(redirect) = admin(&state, &headers, "/admin/clients").await? {
        return Ok(redirect);
    }
    clients_page(&state, jar, None, None, None).await
}

pub(crate) async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Result<Response, PageError> {
    let actor = match admin_form(
        &state,
        &headers,
        &jar,
        &form.csrf,
        &client,
        "/admin/clients",
    )
    .await?
    {
        Ok(actor) => actor,
        Err(redirect) => return Ok(redirect),
    };
    let backchannel = Some(form.backchannel_logout_uri.trim().to_owned()).filter(|u| !u.is_empty());
    let new = NewClient {
        id: None,
        name: form.name.trim().to_owned(),
        public: form.kind == "public",
        auth_method: None,
        redirect_uris: lines(&form.redirect_uris),
        post_logout_redirect_uris: lines(&form.post_logout_redirect_uris),
        scopes: None,
        grant_types: None,
        access_token_ttl: None,
        refresh_token_ttl: None,
        id_token_alg: None,
        require_pkce: None,
        first_party: Some(form.first_party.is_some()),
        jwks: None,
        backchannel_logout_uri: backchannel,
        backchannel_logout_session_required: None,
        frontchannel_logout_uri: None,
        access: None,
    };
    match clients::register(&state.store, new, &actor).await {
        Ok((client, secret)) => {
            let shown = Shown {
                id: client.id,
                secret,
            };
            clients_page(&state, jar, None, Some(shown), None).await
        }
        Err(err) => {
            let error = inline(err)?;
            clients_page(&state, jar, Some(&form), None, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    #[serde(default)]
    confirm: Option<String>,
}

pub(crate) async fn act(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let actor = match admin_form(
        &state,
        &headers,
        &jar,
        &form.csrf,
        &client,
        "/admin/clients",
    )
    .await?
    {
        Ok(actor) => actor,
        Err(redirect) => return Ok(redirect),
    };
    if state.store.get_client(&id).await?.is_none() {
        return Err(PageError::NotFound);
    }
    if state.store.installed_app(&id).await?.is_some() {
        let error = t_args(
            "admin-clients-belongs-to-app",
            &[("client", id.as_str().into())],
        );
        return clients_page(&state, jar, None, None, Some(error)).await;
    }
    match action.as_str() {
        "delete" if form.confirm.is_none() => {
            let error = t_args(
                "admin-clients-confirm-remove-needed",
                &[("client", id.as_str().into())],
            );
            clients_page(&state, jar, None, None, Some(error)).await
        }
        "delete" => match clients::remove(&state.store, &id, &actor).await {
            Ok(()) => Ok(Redirect::to("/admin/clients").into_response()),
            Err(err) => clients_page(&state, jar, None, None, Some(inline(err)?)).await,
        },
        "secret" => match clients::new_secret(&state.store, &id, &actor).await {
            Ok(secret) => {
                let shown = Shown {
                    id,
                    secret: Some(secret),
                };
                clients_page(&state, jar, None, Some(shown), None).await
            }
            Err(err) => clients_page(&state, jar, None, None, Some(inline(err)?)).await,
        },
        _ => Err(PageError::NotFound),
    }
}
