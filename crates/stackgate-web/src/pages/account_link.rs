//! `/account/link`: where an invitation or a password-reset link lands. The person chooses a
//! password; an invited person is then signed in and led to set up their second factors, and
//! someone resetting is signed out everywhere and signs in again with their second factor.

use super::{PageError, render, session_cookie, setup::ClientInfo};
use crate::{
    csrf,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use stackgate_identity::{Actor, IdentityError, Target, hash_secret};
use stackgate_store::{LinkPurpose, Sessions, StoreError};

fn link_spent() -> PageError {
    PageError::Gone(t("account-link-spent"))
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn page(
    state: &AppState,
    status: StatusCode,
    jar: CookieJar,
    (purpose, user): (LinkPurpose, &stackgate_identity::User),
    token: &str,
    csrf: String,
    error: Option<(String, &str)>,
) -> Result<Response, PageError> {
    let (error, field) = error.unzip();
    let page = render(
        state,
        "account_link.html",
        minijinja::context! {
            token, csrf, error, field,
            invite => purpose == LinkPurpose::Invite,
            username => &user.username,
            display_name => &user.display_name,
        },
    )?;
    // The address holds a secret; the site-wide `Referrer-Policy: same-origin` keeps it from
    // other sites (`no-referrer` would make browsers send `Origin: null`, which CSRF refuses).
    Ok((status, jar, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

pub(crate) async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LinkQuery>,
) -> Result<Response, PageError> {
    let Some((purpose, user)) = state.store.account_link(&hash_secret(&query.token)).await? else {
        return Err(link_spent());
    };
    let (jar, csrf) = csrf::issue(&state, jar)?;
    page(
        &state,
        StatusCode::OK,
        jar,
        (purpose, &user),
        &query.token,
        csrf,
        None,
    )
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    token: String,
    csrf: String,
    password: String,
    password_confirm: String,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LinkForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let secret_hash = hash_secret(&form.token);
    // Checked before any hashing, so a spent or forged link costs the server nothing.
    let Some((purpose, user)) = state.store.account_link(&secret_hash).await? else {
        return Err(link_spent());
    };
    let redo = |message: String, field: &str| {
        page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            jar.clone(),
            (purpose, &user),
            &form.token,
            form.csrf.clone(),
            Some((message, field)),
        )
    };
    if form.password != form.password_confirm {
        return redo(t("common-passwords-differ"), "password_confirm");
    }
    let password = match state
        .hasher
        .hash(form.password.clone(), &user.username)
        .await
    {
        Ok(hash) => hash,
        Err(IdentityError::WeakPassword(weakness)) => {
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
    let actor = Actor::user(user.id, &user.username, client.ip.clone());
    let redeemed = state
        .store
        .redeem_account_link(&secret_hash, &password, |purpose, user| {
            actor.entry(
                match purpose {
                    LinkPurpose::Invite => "user.invitation_accepted",
                    LinkPurpose::Reset => "user.password_reset",
                },
                Target::User {
                    id: user.id,
                    name: user.username.clone(),
                },
            )
        })
        .await;
    let (purpose, user) = match redeemed {
        Ok(done) => done,
        Err(StoreError::Refused(_)) => return Err(link_spent()),
        Err(other) => return Err(other.into()),
    };
    // An invitation signs in only someone with no second factor yet: the link proves the
    // mailbox, not the factors, so a person who has them signs in again with them.
    let enrolled = state.store.second_factors(user.id).await?.any();
    match purpose {
        LinkPurpose::Invite if !enrolled => {
            // Holding the invitation and choosing the password is this sign-in; the policy
            // then leads to the sign-in methods page until the required factors are set up.
            let jar =
                session_cookie::start(&state, jar, &user, "pwd", client.ip, client.user_agent)
                    .await?;
            Ok((jar, Redirect::to("/account/security")).into_response())
        }
        LinkPurpose::Invite | LinkPurpose::Reset => {
            let entry = actor.entry(
                "user.sign_out",
                Target::User {
                    id: user.id,
                    name: user.username.clone(),
                },
            );
            crate::oidc::sign_off::end(&state, Sessions::OfUser(user.id), "password reset", &entry)
                .await?;
            Ok(Redirect::to("/login").into_response())
        }
    }
}
