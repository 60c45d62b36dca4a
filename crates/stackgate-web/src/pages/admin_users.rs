//! `/admin/users`: find, create and invite people; and one person's page, where an admin
//! changes their details, groups and state, resets their second factors, sends them a link,
//! and signs them out. Every change goes through [`crate::directory`], as the API's do.

use super::{
    PageError,
    admin::{admin, admin_form, confirmed, inline},
    form_page, render,
    setup::ClientInfo,
    when,
};
use crate::{
    api::{
        lookup,
        views::{GroupView, UserView},
    },
    csrf,
    directory::{self, IssuedLink},
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Form,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{Actor, User, UserPatch};
use stackgate_store::{LinkPurpose, UserFilter};

const PAGE_SIZE: u32 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: Option<String>,
}

/// What the create form held, to show it again with the error.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    /// Group names; a browser sends one `groups` field per ticked box.
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    invite: Option<String>,
}

async fn all_groups(state: &AppState) -> Result<Vec<GroupView>, PageError> {
    let listing = state.store.list_groups(None, None, 500).await?;
    Ok(listing.groups.into_iter().map(GroupView::from).collect())
}

async fn list_page(
    state: &AppState,
    jar: CookieJar,
    query: &ListQuery,
    form: Option<&CreateForm>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let q = query.q.trim();
    let listing = state
        .store
        .list_users(&UserFilter {
            after: query.after.clone(),
            query: (!q.is_empty()).then(|| q.to_owned()),
            disabled: None,
            group: None,
            limit: PAGE_SIZE,
        })
        .await?;
    let users: Vec<UserView> = listing.users.into_iter().map(UserView::from).collect();
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_users.html",
        minijinja::context! {
            csrf,
            users,
            q,
            next => listing.next_cursor,
            groups => all_groups(state).await?,
            form => form.map(minijinja::Value::from_serialize),
            error,
            mail => state.mailer.is_some(),
            section => "users",
        },
    )?;
    Ok(form_page(refused, jar, page))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, "/admin/users").await? {
        return Ok(redirect);
    }
    list_page(&state, jar, &query, None, None).await
}

pub(crate) async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    // axum-extra's form reads the repeated `groups` fields of the ticked boxes.
    axum_extra::extract::Form(form): axum_extra::extract::Form<CreateForm>,
) -> Result<Response, PageError> {
    let actor =
        match admin_form(&state, &headers, &jar, &form.csrf, &client, "/admin/users").await? {
            Ok(actor) => actor,
            Err(redirect) => return Ok(redirect),
        };
    let mut groups = Vec::with_capacity(form.groups.len());
    for name in &form.groups {
        match lookup::group(&state, name).await {
            Ok(group) => groups.push(group),
            Err(err) => {
                let error = inline(err)?;
                return list_page(&state, jar, &ListQuery::default(), Some(&form), Some(error))
                    .await;
            }
        }
    }
    let optional = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
    let (email, display_name) = (optional(&form.email), optional(&form.display_name));
    let person = directory::NewPerson {
        username: form.username.trim(),
        email: email.as_deref(),
        display_name: display_name.as_deref(),
        password: None,
        groups,
    };
    let user = match directory::create_user(&state, &actor, person).await {
        Ok(user) => user,
        Err(err) => {
            let error = inline(err)?;
            return list_page(&state, jar, &ListQuery::default(), Some(&form), Some(error)).await;
        }
    };
    if form.invite.is_none() {
        return Ok(Redirect::to(&format!("/admin/users/{}?done=created", user.id)).into_response());
    }
    match directory::issue_link(&state, &actor, &user, LinkPurpose::Invite).await {
        Ok(link) => {
            user_page(
                &state,
                jar,
                &user,
                Some(Done::Link(LinkPurpose::Invite, link)),
                None,
            )
            .await
        }
        Err(err) => user_page(&state, jar, &user, None, Some(inline(err)?)).await,
    }
}

/// What the page confirms after a change.
enum Done {
    Message(String),
    Link(LinkPurpose, IssuedLink),
}

#[derive(Serialize)]
struct LinkShown {
    purpose: &'static str,
    url: Option<String>,
    expires: String,
    emailed_to: Option<String>,
    not_emailed: Option<String>,
}

#[derive(Serialize)]
struct DeviceRow {
    name: String,
    kind: String,
    created: String,
    last_used: Option<String>,
}

#[derive(Serialize)]
pub(super) struct SessionRow {
    id: String,
    started: String,
    last_seen: String,
    ip: Option<String>,
    device: String,
    methods: String,
}

/// A short description of a browser from its user agent: enough to tell devices apart.
pub(super) fn device_of(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return t("sessions-unknown-device");
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or_else(|| t("sessions-a-browser"), |(_, name)| name.to_owned());
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| name);
    match system {
        Some(system) => t_args(
            "sessions-browser-on",
            &[("browser", browser.into()), ("system", system.into())],
        ),
        None => browser,
    }
}

pub(super) fn session_rows(sessions: Vec<stackgate_store::SessionSummary>) -> Vec<SessionRow> {
    sessions
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            started: when(s.created_at),
            last_seen: when(s.last_seen_at),
            device: device_of(s.user_agent.as_deref()),
            ip: s.ip,
            methods: s.amr.split_whitespace().collect::<Vec<_>>().join(", "),
        })
        .collect()
}

async fn user_page(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    done: Option<Done>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let member_of: Vec<GroupView> = state
        .store
        .groups_of(user.id)
        .await?
        .into_iter()
        .map(GroupView::from)
        .collect();
    let others: Vec<GroupView> = all_groups(state)
        .await?
        .into_iter()
        .filter(|g| !member_of.iter().any(|m| m.id == g.id))
        .collect();
    let factors = state.store.second_factors(user.id).await?;
    let devices: Vec<DeviceRow> = state
        .store
        .credentials_of(user.id)
        .await?
        .into_iter()
        .map(|c| DeviceRow {
            name: c.name,
            kind: match c.kind {
                stackgate_store::CredentialKind::Passkey => t("admin-user-passkey"),
                stackgate_store::CredentialKind::SecurityKey => t("admin-user-security-key"),
            },
            created: when(c.created_at),
            last_used: c.last_used_at.map(when),
        })
        .collect();
    let sessions = session_rows(
        state
            .store
            .sessions_of(user.id, state.settings().session_idle_timeout)
            .await?,
    );
    let (message, link) = match done {
        Some(Done::Message(m)) => (Some(m), None),
        Some(Done::Link(purpose, link)) => (
            None,
            Some(LinkShown {
                purpose: purpose.as_str(),
                url: link.emailed_to.is_none().then_some(link.url),
                expires: when(link.expires_at),
                emailed_to: link.emailed_to,
                not_emailed: link.not_emailed,
            }),
        ),
        None => (None, None),
    };
    let (jar, csrf) = csrf::issue(state, jar)?;
    let refused = error.is_some();
    let page = render(
        state,
        "admin_user.html",
        minijinja::context! {
            csrf,
            person => UserView::from(user.clone()),
            member_of,
            others,
            totp => factors.totp,
            recovery_codes_left => factors.recovery_codes_left,
            devices,
            sessions,
            message,
            link,
            error,
            has_password => state.store.login_candidate(&user.username).await?.is_some_and(|(_, hash)| hash.is_some()),
            section => "users",
        },
    )?;
    Ok(form_page(refused, jar, page))
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

fn done_message(code: &str) -> Option<String> {
    Some(t(match code {
        "created" => "admin-user-created",
        "saved" => "common-saved",
        "disabled" => "admin-user-disabled",
        "enabled" => "admin-user-enabled",
        "signed-out" => "admin-user-signed-out",
        "mfa-reset" => "admin-user-mfa-reset",
        "group-added" => "admin-user-group-added",
        "group-removed" => "admin-user-group-removed",
        _ => return None,
    }))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    if let Err(redirect) = admin(&state, &headers, &format!("/admin/users/{id}")).await? {
        return Ok(redirect);
    }
    let user = lookup::user(&state, &id).await?;
    let done = query
        .done
        .as_deref()
        .and_then(done_message)
        .map(Done::Message);
    user_page(&state, jar, &user, done, None).await
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    group: String,
    /// The box ticked to confirm a change that cannot be undone.
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
    let here = format!("/admin/users/{id}");
    let actor = match admin_form(&state, &headers, &jar, &form.csrf, &client, &here).await? {
        Ok(actor) => actor,
        Err(redirect) => return Ok(redirect),
    };
    let user = lookup::user(&state, &id).await?;
    match perform(&state, &actor, &user, &action, &form).await {
        Ok(Outcome::Redirect(code)) => {
            Ok(Redirect::to(&format!("/admin/users/{}?done={code}", user.id)).into_response())
        }
        Ok(Outcome::Deleted) => Ok(Redirect::to("/admin/users").into_response()),
        Ok(Outcome::Link(purpose, link)) => {
            user_page(&state, jar, &user, Some(Done::Link(purpose, link)), None).await
        }
        Err(err) => {
            let error = inline(err)?;
            // The account as it is now: the refused change left it as it was.
            let user = lookup::user(&state, &id).await?;
            user_page(&state, jar, &user, None, Some(error)).await
        }
    }
}

enum Outcome {
    Redirect(&'static str),
    Deleted,
    Link(LinkPurpose, IssuedLink),
}

async fn perform(
    state: &AppState,
    actor: &Actor,
    user: &User,
    action: &str,
    form: &ActionForm,
) -> Result<Outcome, crate::error::ApiError> {
    use crate::error::ApiError;
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(match action {
        "details" => {
            let email = optional(&form.email);
            let patch =
                UserPatch::parse(Some(email.as_deref()), Some(form.display_name.trim()), None)?;
            directory::update_user(state, actor, user, &patch).await?;
            Outcome::Redirect("saved")
        }
        "disable" | "enable" => {
            let disable = action == "disable";
            let patch = UserPatch::parse(None, None, Some(disable))?;
            directory::update_user(state, actor, user, &patch).await?;
            Outcome::Redirect(if disable { "disabled" } else { "enabled" })
        }
        "delete" => {
            confirmed(&form.confirm, || {
                t_args(
                    "admin-confirm-delete",
                    &[("name", user.username.as_str().into())],
                )
            })?;
            directory::delete_user(state, actor, user).await?;
            Outcome::Deleted
        }
        "reset-mfa" => {
            confirmed(&form.confirm, || t("admin-confirm-reset-mfa"))?;
            directory::reset_second_factors(state, actor, user).await?;
            Outcome::Redirect("mfa-reset")
        }
        "sign-out" => {
            directory::sign_out_user(state, actor, user, "signed out by an admin").await?;
            Outcome::Redirect("signed-out")
        }
        "invite" | "password-reset" => {
            let purpose = if action == "invite" {
                LinkPurpose::Invite
            } else {
                LinkPurpose::Reset
            };
            Outcome::Link(
                purpose,
                directory::issue_link(state, actor, user, purpose).await?,
            )
        }
        "add-group" => {
            let group = lookup::group(state, form.group.trim()).await?;
            directory::add_member(state, actor, &group, user).await?;
            Outcome::Redirect("group-added")
        }
        "remove-group" => {
            let group = lookup::group(state, form.group.trim()).await?;
            directory::remove_member(state, actor, &group, user).await?;
            Outcome::Redirect("group-removed")
        }
        _ => return Err(ApiError::NotFound(format!("action {action:?}"))),
    })
}
