//! First-run setup: the one-time link printed at start creates the first admin.

use super::{PageError, render, session_cookie};
use crate::{
    csrf,
    extract::client_ip,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::{FromRequestParts, Query, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{Actor, NewUser, Target, hash_secret};
use stackgate_store::StoreError;

fn link_spent() -> PageError {
    PageError::Gone(t("setup-link-spent"))
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(Serialize, Default)]
struct SetupPage {
    token: String,
    csrf: String,
    username: String,
    email: String,
    display_name: String,
    error: Option<String>,
    field: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LinkQuery>,
) -> Result<Response, PageError> {
    if !state
        .store
        .setup_token_live(&hash_secret(&query.token))
        .await?
    {
        return Err(link_spent());
    }
    let (jar, csrf) = csrf::issue(&state, jar)?;
    let page = render(
        &state,
        "setup.html",
        SetupPage {
            token: query.token,
            csrf,
            ..Default::default()
        },
    )?;
    Ok((jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct SetupForm {
    token: String,
    csrf: String,
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    password: String,
    password_confirm: String,
}

/// Peer address and user agent, for the audit log and the session record.
pub(crate) struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            ip: client_ip(parts),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SetupForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let secret_hash = hash_secret(&form.token);
    // Checked before any hashing, so a spent or forged link costs the server nothing.
    if !state.store.setup_token_live(&secret_hash).await? {
        return Err(link_spent());
    }
    let redo = |error: String, field: &str| -> Result<Response, PageError> {
        let page = render(
            &state,
            "setup.html",
            SetupPage {
                token: form.token.clone(),
                csrf: form.csrf.clone(),
                username: form.username.clone(),
                email: form.email.clone(),
                display_name: form.display_name.clone(),
                error: Some(error),
                field: Some(field.to_owned()),
            },
        )?;
        Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CACHE_CONTROL, "no-store")],
            page,
        )
            .into_response())
    };
    let display_name = Some(form.display_name.as_str()).filter(|d| !d.trim().is_empty());
    let admin = match NewUser::parse(&form.username, Some(&form.email), display_name) {
        Ok(admin) => admin,
        Err(stackgate_identity::IdentityError::Invalid { field, message }) => {
            return redo(format!("{}: {message}", field.replace('_', " ")), field);
        }
        Err(other) => return Err(other.into()),
    };
    if form.password != form.password_confirm {
        return redo(t("common-passwords-differ"), "password_confirm");
    }
    let password = match state
        .hasher
        .hash(form.password.clone(), &admin.username)
        .await
    {
        Ok(hash) => hash,
        Err(stackgate_identity::IdentityError::WeakPassword(weakness)) => {
            return redo(
                t_args(
                    "common-weak-password",
                    &[("reason", crate::i18n::weakness(&weakness).into())],
                ),
                "password",
            );
        }
        Err(other) => return Err(other.into()),
    };
    let entry = Actor {
        source_ip: client.ip.clone(),
        ..Actor::system("setup")
    }
    .entry(
        "setup.complete",
        Target::User {
            id: admin.id,
            name: admin.username.clone(),
        },
    );
    let user = match state
        .store
        .complete_setup(&secret_hash, &admin, &password, &entry)
        .await
    {
        Ok(user) => user,
        Err(StoreError::Refused(_)) => return Err(link_spent()),
        Err(StoreError::Conflict { field, message }) => return redo(message, field),
        Err(other) => return Err(other.into()),
    };
    tracing::info!(admin = %user.username, "first admin created through the setup link");
    let jar =
        session_cookie::start(&state, jar, &user, "pwd", client.ip, client.user_agent).await?;
    Ok((jar, Redirect::to("/")).into_response())
}
