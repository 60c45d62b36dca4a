//! What admins do to people and groups, in one place for the admin API and the admin console:
//! each operation checks its input, writes the change with its audit entry, and tells apps when
//! sessions end. The two edges only translate requests and answers.

use crate::{error::ApiError, state::AppState};
use serde_json::json;
use stackgate_identity::{
    Actor, Group, GroupPatch, MfaPolicy, NewGroup, NewUser, OffsetDateTime, SecretToken, Target,
    User, UserPatch,
};
use stackgate_store::{FactorsRemoved, LinkPurpose, Sessions};

fn user_target(user: &User) -> Target {
    Target::User {
        id: user.id,
        name: user.username.clone(),
    }
}

fn group_target(group: &Group) -> Target {
    Target::Group {
        id: group.id,
        name: group.name.clone(),
    }
}

/// A person to create.
pub(crate) struct NewPerson<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    /// Without one, the person signs in through an invitation.
    pub password: Option<String>,
    pub groups: Vec<Group>,
}

pub(crate) async fn create_user(
    state: &AppState,
    actor: &Actor,
    person: NewPerson<'_>,
) -> Result<User, ApiError> {
    let new = NewUser::parse(person.username, person.email, person.display_name)?;
    let password = match person.password {
        Some(password) => Some(state.hasher.hash(password, &new.username).await?),
        None => None,
    };
    let entry = actor
        .entry(
            "user.create",
            Target::User {
                id: new.id,
                name: new.username.clone(),
            },
        )
        .with_detail(
            json!({ "groups": person.groups.iter().map(|g| &g.name).collect::<Vec<_>>() }),
        );
    let ids: Vec<_> = person.groups.iter().map(|g| g.id).collect();
    Ok(state
        .store
        .create_user(&new, password.as_ref(), &ids, &entry)
        .await?)
}

/// Changes a person's details or disabled flag; disabling signs them out everywhere.
pub(crate) async fn update_user(
    state: &AppState,
    actor: &Actor,
    user: &User,
    patch: &UserPatch,
) -> Result<User, ApiError> {
    if patch.is_empty() {
        return Ok(user.clone());
    }
    let action = match patch.disabled {
        Some(true) if !user.disabled => "user.disable",
        Some(false) if user.disabled => "user.enable",
        _ => "user.update",
    };
    let changed: Vec<&str> = [
        patch.email.is_some().then_some("email"),
        patch.display_name.is_some().then_some("display_name"),
        patch.disabled.is_some().then_some("disabled"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let entry = actor
        .entry(action, user_target(user))
        .with_detail(json!({ "changed": changed }));
    let updated = state.store.update_user(user.id, patch, &entry).await?;
    if action == "user.disable" {
        sign_out_user(state, actor, &updated, "account disabled").await?;
    }
    Ok(updated)
}

/// Deletes a person; their sessions end first and apps are told. The last admin stays.
pub(crate) async fn delete_user(
    state: &AppState,
    actor: &Actor,
    user: &User,
) -> Result<(), ApiError> {
    // Checked before signing anyone out, so a refused delete changes nothing.
    if state.store.is_admin(user.id).await?
        && !state.store.other_enabled_admin_exists(user.id).await?
    {
        return Err(ApiError::Conflict {
            detail: "this is the last enabled admin; make another user an admin first".into(),
            field: None,
        });
    }
    sign_out_user(state, actor, user, "account deleted").await?;
    let entry = actor.entry("user.delete", user_target(user));
    state.store.delete_user(user.id, &entry).await?;
    Ok(())
}

/// What signing someone out ended.
pub(crate) struct SignedOut {
    pub sessions_ended: usize,
    pub apps_notified: Vec<String>,
}

/// Ends every session of a person, telling each app that holds one.
pub(crate) async fn sign_out_user(
    state: &AppState,
    actor: &Actor,
    user: &User,
    reason: &str,
) -> Result<SignedOut, ApiError> {
    let entry = actor.entry("user.sign_out", user_target(user));
    let done = crate::oidc::sign_off::end(state, Sessions::OfUser(user.id), reason, &entry).await?;
    Ok(SignedOut {
        sessions_ended: done.sessions.len(),
        apps_notified: done.back_channel.into_iter().map(|d| d.client_id).collect(),
    })
}

/// Removes every second factor of a person (a lost phone or key) and signs them out
/// everywhere, since a lost device may still hold a session. Their next sign-in leads them
/// through enrolment when their policy requires a factor.
pub(crate) async fn reset_second_factors(
    state: &AppState,
    actor: &Actor,
    user: &User,
) -> Result<FactorsRemoved, ApiError> {
    let entry = actor.entry("user.reset_mfa", user_target(user));
    let removed = state.store.reset_second_factors(user.id, &entry).await?;
    sign_out_user(state, actor, user, "second factors reset by an admin").await?;
    Ok(removed)
}

/// A link an admin handed out, and whether it went out by email.
pub(crate) struct IssuedLink {
    /// The link itself: shown to the admin only when it was not emailed.
    pub url: String,
    pub expires_at: OffsetDateTime,
    /// The address it was sent to.
    pub emailed_to: Option<String>,
    /// Why it was not emailed, when email is set up but sending failed or the person has no
    /// address.
    pub not_emailed: Option<String>,
}

/// Issues an invitation or a password-reset link (replacing the person's earlier one) and
/// emails it when a mail server is set up and the person has an address.
pub(crate) async fn issue_link(
    state: &AppState,
    actor: &Actor,
    user: &User,
    purpose: LinkPurpose,
) -> Result<IssuedLink, ApiError> {
    if user.disabled {
        return Err(ApiError::Conflict {
            detail: format!(
                "{} is disabled: enable the account before sending a link",
                user.username
            ),
            field: None,
        });
    }
    let (action, ttl) = match purpose {
        LinkPurpose::Invite => ("user.invite", state.config.invitation_lifetime),
        LinkPurpose::Reset => (
            "user.password_reset_link",
            state.config.password_reset_lifetime,
        ),
    };
    let secret = SecretToken::generate("")?;
    let emailing = state.mailer.is_some() && user.email.is_some();
    let entry = actor
        .entry(action, user_target(user))
        .with_detail(json!({ "emailed": emailing }));
    let expires_at = state
        .store
        .issue_account_link(user.id, purpose, &secret.hash, ttl, &entry)
        .await?;
    let url = state
        .config
        .url(&format!("/account/link?token={}", secret.plaintext));
    let mut issued = IssuedLink {
        url,
        expires_at,
        emailed_to: None,
        not_emailed: None,
    };
    match (&state.mailer, &user.email) {
        (Some(mailer), Some(address)) => {
            let email = link_email(state, actor, user, purpose, &issued);
            match mailer
                .send(&stackgate_mail::Email {
                    to_name: user.display_name.clone(),
                    to_address: address.clone(),
                    subject: email.0,
                    body: email.1,
                })
                .await
            {
                Ok(()) => issued.emailed_to = Some(address.clone()),
                Err(err) => {
                    tracing::warn!(%err, user = %user.username, "link email not sent");
                    issued.not_emailed = Some(format!("the email could not be sent ({err})"));
                }
            }
        }
        (Some(_), None) => {
            issued.not_emailed = Some(format!("{} has no email address", user.username));
        }
        (None, _) => {}
    }
    Ok(issued)
}

fn link_email(
    state: &AppState,
    actor: &Actor,
    user: &User,
    purpose: LinkPurpose,
    link: &IssuedLink,
) -> (String, String) {
    let settings = state.settings();
    let org = &settings.organisation_name;
    let until = format!(
        "{} {:02}:{:02} UTC",
        link.expires_at.date(),
        link.expires_at.hour(),
        link.expires_at.minute()
    );
    match purpose {
        LinkPurpose::Invite => (
            format!("You are invited to {org}"),
            format!(
                "Hello {},\n\n{} invited you to {org}'s apps. Your username is {}.\n\n\
                 Open this link to choose your password and set up how you sign in:\n\n{}\n\n\
                 The link works once, until {until}. If you did not expect this invitation, \
                 ignore this email.\n",
                user.display_name, actor.name, user.username, link.url
            ),
        ),
        LinkPurpose::Reset => (
            format!("Choose a new password for {org}"),
            format!(
                "Hello {},\n\nAn admin of {org} ({}) sent you this link to choose a new \
                 password for {}:\n\n{}\n\nThe link works once, until {until}. Your passkeys, \
                 security keys and authenticator app stay as they are. If you did not ask for \
                 this, tell your admin.\n",
                user.display_name, actor.name, user.username, link.url
            ),
        ),
    }
}

pub(crate) async fn create_group(
    state: &AppState,
    actor: &Actor,
    name: &str,
    description: Option<&str>,
) -> Result<Group, ApiError> {
    let new = NewGroup::parse(name, description)?;
    let entry = actor.entry(
        "group.create",
        Target::Group {
            id: new.id,
            name: new.name.clone(),
        },
    );
    Ok(state.store.create_group(&new, &entry).await?)
}

pub(crate) async fn update_group(
    state: &AppState,
    actor: &Actor,
    group: &Group,
    patch: &GroupPatch,
) -> Result<Group, ApiError> {
    if patch.mfa_policy == Some(MfaPolicy::PhishingResistant) && state.webauthn.is_none() {
        // Members could never meet it: they would be locked out.
        return Err(ApiError::Invalid {
            field: "mfa_policy".into(),
            detail: "phishing_resistant needs passkeys or security keys, which are off: the issuer is an IP address, and WebAuthn needs a host name".into(),
        });
    }
    let entry = actor
        .entry("group.update", group_target(group))
        .with_detail(json!({
            "name": patch.name,
            "mfa_policy": patch.mfa_policy.map(MfaPolicy::as_str),
        }));
    Ok(state.store.update_group(group.id, patch, &entry).await?)
}

pub(crate) async fn delete_group(
    state: &AppState,
    actor: &Actor,
    group: &Group,
) -> Result<(), ApiError> {
    let entry = actor
        .entry("group.delete", group_target(group))
        .with_detail(json!({ "members": group.member_count }));
    Ok(state.store.delete_group(group.id, &entry).await?)
}

pub(crate) async fn add_member(
    state: &AppState,
    actor: &Actor,
    group: &Group,
    user: &User,
) -> Result<(), ApiError> {
    let entry = actor
        .entry("group.add_member", group_target(group))
        .with_detail(json!({ "user": user.username, "user_id": user.id }));
    state.store.add_member(group.id, user.id, &entry).await?;
    Ok(())
}

pub(crate) async fn remove_member(
    state: &AppState,
    actor: &Actor,
    group: &Group,
    user: &User,
) -> Result<(), ApiError> {
    let entry = actor
        .entry("group.remove_member", group_target(group))
        .with_detail(json!({ "user": user.username, "user_id": user.id }));
    Ok(state.store.remove_member(group.id, user.id, &entry).await?)
}
