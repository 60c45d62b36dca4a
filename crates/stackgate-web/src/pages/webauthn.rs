//! WebAuthn with webauthn-rs: registering passkeys and security keys, signing in with a passkey
//! alone, and a security key (or passkey) as the second step after the password.
//!
//! Each ceremony is two JSON calls from `/assets/webauthn.js`: `start` returns the options the
//! browser hands to `navigator.credentials`, and keeps the server-side state under a random
//! ceremony id; `finish` takes that state once and checks the browser's answer against it.

use super::{
    PageError, login::throttled_message, safe_return_path, second_factor, session_cookie,
    setup::ClientInfo,
};
use crate::{
    auth::session_from_cookies,
    csrf,
    i18n::{t, t_args},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};
use stackgate_identity::{Actor, SecretToken, Target, User, Uuid, hash_secret};
use stackgate_store::{CredentialKind, NewCredential, StoredCredential};
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Webauthn, WebauthnError,
};

/// Seconds a ceremony waits for the browser's answer.
const CEREMONY_LIFETIME: i64 = 300;

/// Why a ceremony call stopped: a page-level failure, or a message the script shows.
enum Refused {
    Page(PageError),
    Json(StatusCode, String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Page(err) => err.into_response(),
            Refused::Json(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
        }
    }
}

impl From<PageError> for Refused {
    fn from(err: PageError) -> Self {
        Refused::Page(err)
    }
}

impl From<crate::error::ApiError> for Refused {
    fn from(err: crate::error::ApiError) -> Self {
        Refused::Page(err.into())
    }
}

impl From<stackgate_store::StoreError> for Refused {
    fn from(err: stackgate_store::StoreError) -> Self {
        Refused::Page(err.into())
    }
}

/// A JSON answer for the script: an error it shows to the person, with a status.
fn refuse(status: StatusCode, message: &str) -> Refused {
    Refused::Json(status, message.to_owned())
}

fn answer(outcome: Result<Response, Refused>) -> Response {
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn webauthn(state: &AppState) -> Result<&Webauthn, Refused> {
    state
        .webauthn
        .as_deref()
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, &t("webauthn-needs-host-name")))
}

fn internal(err: impl std::fmt::Display) -> Refused {
    Refused::Page(PageError::Internal(err.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, Refused> {
    serde_json::to_string(value).map_err(internal)
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Refused> {
    serde_json::from_str(text).map_err(internal)
}

async fn keep(
    state: &AppState,
    user: Option<Uuid>,
    purpose: &str,
    value: &Value,
) -> Result<String, Refused> {
    let id = SecretToken::generate("").map_err(internal)?;
    state
        .store
        .start_ceremony(
            &id.hash,
            user,
            purpose,
            &value.to_string(),
            CEREMONY_LIFETIME,
        )
        .await
        .map_err(Refused::from)?;
    Ok(id.plaintext)
}

async fn take(
    state: &AppState,
    ceremony: &str,
    purpose: &str,
) -> Result<(Option<Uuid>, Value), Refused> {
    let taken = state
        .store
        .take_ceremony(&hash_secret(ceremony), purpose)
        .await
        .map_err(Refused::from)?;
    let Some((user, text)) = taken else {
        return Err(refuse(StatusCode::BAD_REQUEST, &t("webauthn-expired")));
    };
    Ok((user, decode(&text)?))
}

fn credential_id(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// `hwk` for a credential bound to its device, `swk` for one that may be synced (backup
/// eligible), as RFC 8176 distinguishes them.
fn key_amr(backup_eligible: bool) -> &'static str {
    if backup_eligible { "swk" } else { "hwk" }
}

fn user_target(user: &User) -> Target {
    Target::User {
        id: user.id,
        name: user.username.clone(),
    }
}

/// Records a signal that an authenticator was cloned (its signature counter went backwards),
/// for admins, and refuses.
async fn cloned(
    state: &AppState,
    user: &User,
    credential: &StoredCredential,
    ip: Option<String>,
) -> Refused {
    tracing::warn!(user = %user.username, credential = %credential.id, "possible cloned authenticator: signature counter went backwards");
    let entry = Actor::user(user.id, &user.username, ip)
        .entry("webauthn.cloned", user_target(user))
        .with_detail(json!({ "credential": credential.id, "name": credential.name }));
    if let Err(err) = state.store.record(&entry).await {
        tracing::warn!(%err, "cannot record a cloned authenticator");
    }
    refuse(StatusCode::UNAUTHORIZED, &t("webauthn-cloned"))
}

// ---- registration -------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct RegisterStart {
    csrf: String,
    kind: String,
    name: String,
    password: String,
}

pub(crate) async fn register_start(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<RegisterStart>,
) -> Response {
    answer(register_start_inner(&state, client, &headers, &jar, body).await)
}

async fn register_start_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    jar: &CookieJar,
    body: RegisterStart,
) -> Result<Response, Refused> {
    if !csrf::verify(state, jar, headers, &body.csrf) {
        return Err(Refused::Page(PageError::forged_form()));
    }
    let webauthn = webauthn(state)?;
    let Some(session) = session_from_cookies(state, headers)
        .await
        .map_err(Refused::from)?
    else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            &t("webauthn-sign-in-first"),
        ));
    };
    let Some(kind) = CredentialKind::parse(&body.kind) else {
        return Err(refuse(StatusCode::BAD_REQUEST, &t("webauthn-choose-kind")));
    };
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(refuse(StatusCode::BAD_REQUEST, &t("webauthn-name-length")));
    }
    if let Err(message) =
        super::account::password_again(state, &session, body.password, client.ip.as_deref())
            .await
            .map_err(Refused::Page)?
    {
        return Err(refuse(StatusCode::UNAUTHORIZED, &message));
    }
    let user = &session.user;
    let existing: Vec<_> = state
        .store
        .credentials_of(user.id)
        .await
        .map_err(Refused::from)?
        .iter()
        .filter_map(|c| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&c.credential_id)
                .ok()
                .map(Into::into)
        })
        .collect();
    let (options, saved) = match kind {
        CredentialKind::Passkey => {
            let (options, registration) = webauthn
                .start_passkey_registration(
                    user.id,
                    &user.username,
                    &user.display_name,
                    Some(existing),
                )
                .map_err(internal)?;
            let mut options = serde_json::to_value(options).map_err(internal)?;
            // webauthn-rs asks for a discoverable credential only opportunistically; a passkey
            // that signs in without a username must be one.
            options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("required");
            options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(true);
            (
                options,
                serde_json::to_value(registration).map_err(internal)?,
            )
        }
        CredentialKind::SecurityKey => {
            let (options, registration) = webauthn
                .start_securitykey_registration(
                    user.id,
                    &user.username,
                    &user.display_name,
                    Some(existing),
                    None,
                    None,
                )
                .map_err(internal)?;
            let mut options = serde_json::to_value(options).map_err(internal)?;
            // Chromium refuses a non-discoverable credential that asks for credProtect
            // "userVerificationRequired" ("protection policy is inconsistent"); webauthn-rs
            // only requests it opportunistically, and the key's UV state is still checked.
            if let Some(extensions) = options["publicKey"]["extensions"].as_object_mut() {
                extensions.remove("credentialProtectionPolicy");
                extensions.remove("enforceCredentialProtectionPolicy");
            }
            (
                options,
                serde_json::to_value(registration).map_err(internal)?,
            )
        }
    };
    let ceremony = keep(
        state,
        Some(user.id),
        "register",
        &json!({ "kind": kind.as_str(), "name": name, "state": saved }),
    )
    .await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": options })).into_response())
}

#[derive(Deserialize)]
pub(crate) struct RegisterFinish {
    ceremony: String,
    credential: RegisterPublicKeyCredential,
}

/// A credential that passed its registration ceremony.
struct Registered {
    raw_id: Vec<u8>,
    /// What is stored for it, and read back at each use.
    record: Value,
    /// Whether it may be synced to other devices.
    backup_eligible: bool,
}

/// Checks a registration answer against the ceremony's saved state.
fn finish_registration(
    webauthn: &Webauthn,
    kind: CredentialKind,
    saved_state: &Value,
    credential: &RegisterPublicKeyCredential,
) -> Result<Registered, Refused> {
    let failed = |e: WebauthnError| {
        tracing::info!(error = %e, "WebAuthn registration refused");
        refuse(StatusCode::BAD_REQUEST, &t("webauthn-answer-refused"))
    };
    let (raw_id, record) = match kind {
        CredentialKind::Passkey => {
            let registration: PasskeyRegistration =
                serde_json::from_value(saved_state.clone()).map_err(internal)?;
            let passkey = webauthn
                .finish_passkey_registration(credential, &registration)
                .map_err(failed)?;
            let record = serde_json::to_value(&passkey).map_err(internal)?;
            (passkey.cred_id().to_vec(), record)
        }
        CredentialKind::SecurityKey => {
            let registration: SecurityKeyRegistration =
                serde_json::from_value(saved_state.clone()).map_err(internal)?;
            let key = webauthn
                .finish_securitykey_registration(credential, &registration)
                .map_err(failed)?;
            let record = serde_json::to_value(&key).map_err(internal)?;
            (key.cred_id().to_vec(), record)
        }
    };
    let backup_eligible = record["cred"]["backup_eligible"].as_bool().unwrap_or(false);
    Ok(Registered {
        raw_id,
        record,
        backup_eligible,
    })
}

pub(crate) async fn register_finish(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<RegisterFinish>,
) -> Response {
    answer(register_finish_inner(&state, client, &headers, jar, body).await)
}

async fn register_finish_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    jar: CookieJar,
    body: RegisterFinish,
) -> Result<Response, Refused> {
    if !crate::auth::same_origin(state, &axum::http::Method::POST, headers) {
        return Err(Refused::Page(PageError::forged_form()));
    }
    let webauthn = webauthn(state)?;
    let Some(session) = session_from_cookies(state, headers)
        .await
        .map_err(Refused::from)?
    else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            &t("webauthn-sign-in-first"),
        ));
    };
    let (owner, saved) = take(state, &body.ceremony, "register").await?;
    let user = &session.user;
    if owner != Some(user.id) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            &t("webauthn-other-sign-in"),
        ));
    }
    let kind = saved["kind"]
        .as_str()
        .and_then(CredentialKind::parse)
        .ok_or_else(|| internal("ceremony without a kind"))?;
    let name = saved["name"].as_str().unwrap_or("key").to_owned();
    let Registered {
        raw_id,
        record,
        backup_eligible,
    } = finish_registration(webauthn, kind, &saved["state"], &body.credential)?;
    let entry = Actor::user(user.id, &user.username, client.ip.clone())
        .entry("webauthn.register", user_target(user))
        .with_detail(json!({ "kind": kind.as_str(), "name": name }));
    state
        .store
        .add_credential(
            &NewCredential {
                user_id: user.id,
                kind,
                credential_id: &credential_id(&raw_id),
                name: &name,
                credential: &record.to_string(),
                backup_eligible,
            },
            &entry,
        )
        .await
        .map_err(Refused::from)?;
    // Led here at sign-in by a policy asking for this factor: registering it, with the user
    // verified, counts as using it.
    let upgraded = session_cookie::with_methods(&session.amr, &[key_amr(backup_eligible), "mfa"]);
    let jar = if !crate::auth::meets_policy(state, &session)
        && crate::auth::required_policy(state, &session).met_by(&upgraded)
    {
        session_cookie::step_up(state, jar, user, &upgraded, client.ip)
            .await
            .map_err(Refused::Page)?
    } else {
        jar
    };
    Ok((jar, Json(json!({ "redirect": "/account/security" }))).into_response())
}

// ---- passkey sign-in ----------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct CsrfBody {
    csrf: String,
}

/// Starts a passkey sign-in (no username: the authenticator offers the account's passkeys).
pub(crate) async fn login_start(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<CsrfBody>,
) -> Response {
    let run = async {
        if !csrf::verify(&state, &jar, &headers, &body.csrf) {
            return Err(Refused::Page(PageError::forged_form()));
        }
        if let Some(wait) = state.throttle.ceremony_start(client.ip.as_deref()) {
            let seconds = wait.as_secs().max(1);
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, seconds.to_string())],
                Json(json!({ "error": t_args("webauthn-too-many-starts", &[("seconds", seconds.into())]) })),
            )
                .into_response());
        }
        let webauthn = webauthn(&state)?;
        let (options, authentication) = webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let saved = serde_json::to_value(authentication).map_err(internal)?;
        let ceremony = keep(&state, None, "login", &saved).await?;
        Ok(Json(json!({ "ceremony": ceremony, "options": options })).into_response())
    };
    answer(run.await)
}

#[derive(Deserialize)]
pub(crate) struct LoginFinish {
    ceremony: String,
    credential: PublicKeyCredential,
    return_to: Option<String>,
}

pub(crate) async fn login_finish(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginFinish>,
) -> Response {
    answer(login_finish_inner(&state, client, &headers, jar, body).await)
}

async fn login_finish_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    jar: CookieJar,
    body: LoginFinish,
) -> Result<Response, Refused> {
    if !crate::auth::same_origin(state, &axum::http::Method::POST, headers) {
        return Err(Refused::Page(PageError::forged_form()));
    }
    let webauthn = webauthn(state)?;
    let (_, saved) = take(state, &body.ceremony, "login").await?;
    let authentication: DiscoverableAuthentication =
        serde_json::from_value(saved).map_err(internal)?;
    let unknown = || refuse(StatusCode::UNAUTHORIZED, &t("webauthn-unknown-passkey"));
    let (handle, raw_id) = webauthn
        .identify_discoverable_authentication(&body.credential)
        .map_err(|_| unknown())?;
    let stored = state
        .store
        .credential_by_credential_id(&credential_id(raw_id))
        .await
        .map_err(Refused::from)?
        .filter(|c| c.kind == CredentialKind::Passkey && c.user_id == handle)
        .ok_or_else(unknown)?;
    let user = state
        .store
        .get_user(stored.user_id)
        .await
        .map_err(Refused::from)?;
    if user.disabled {
        return Err(unknown());
    }
    let (result, updated) = match verify_passkey(
        webauthn,
        authentication,
        &body.credential,
        &stored.credential,
    )? {
        Ok(verified) => verified,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Err(cloned(state, &user, &stored, client.ip).await);
        }
        Err(err) => {
            tracing::info!(error = %err, "passkey sign-in refused");
            let entry = Actor::user(user.id, &user.username, client.ip)
                .entry("login.failure", user_target(&user))
                .with_detail(json!({ "step": "passkey" }));
            state.store.record(&entry).await.map_err(Refused::from)?;
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                &t("webauthn-passkey-refused"),
            ));
        }
    };
    state
        .store
        .credential_used(stored.id, updated.as_deref())
        .await
        .map_err(Refused::from)?;
    // A passkey is a key the person holds, unlocked by their PIN or biometric: two factors.
    let amr = format!("{} user mfa", key_amr(result.backup_eligible()));
    let jar = session_cookie::start(state, jar, &user, &amr, client.ip, client.user_agent)
        .await
        .map_err(Refused::Page)?;
    let redirect = safe_return_path(body.return_to.as_deref());
    Ok((jar, Json(json!({ "redirect": redirect }))).into_response())
}

/// What a passkey sign-in answer proved and the record to store back if its counter or flags
/// moved; or webauthn-rs's refusal, for the caller to tell a clone from a bad answer.
type Verified = Result<(AuthenticationResult, Option<String>), WebauthnError>;

/// Checks a passkey sign-in answer against the ceremony's state and the passkey's stored
/// record.
fn verify_passkey(
    webauthn: &Webauthn,
    authentication: DiscoverableAuthentication,
    credential: &PublicKeyCredential,
    stored_record: &str,
) -> Result<Verified, Refused> {
    let mut passkey: Passkey = decode(stored_record)?;
    let result = match webauthn.finish_discoverable_authentication(
        credential,
        authentication,
        &[DiscoverableKey::from(&passkey)],
    ) {
        Ok(result) => result,
        Err(err) => return Ok(Err(err)),
    };
    let updated = passkey
        .update_credential(&result)
        .filter(|changed| *changed)
        .map(|_| encode(&passkey))
        .transpose()?;
    Ok(Ok((result, updated)))
}

// ---- second factor ------------------------------------------------------------------------

/// Starts the second step with the user's security keys (or, without any, their passkeys).
pub(crate) async fn second_factor_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<CsrfBody>,
) -> Response {
    let run = async {
        if !csrf::verify(&state, &jar, &headers, &body.csrf) {
            return Err(Refused::Page(PageError::forged_form()));
        }
        let webauthn = webauthn(&state)?;
        let Some((_, flow)) = second_factor::current_flow(&state, &jar)
            .await
            .map_err(Refused::Page)?
        else {
            return Err(refuse(StatusCode::UNAUTHORIZED, &t("webauthn-start-again")));
        };
        let credentials = state
            .store
            .credentials_of(flow.user_id)
            .await
            .map_err(Refused::from)?;
        let keys: Vec<SecurityKey> = credentials
            .iter()
            .filter(|c| c.kind == CredentialKind::SecurityKey)
            .map(|c| decode(&c.credential))
            .collect::<Result<_, _>>()?;
        let (options, saved) = if keys.is_empty() {
            let passkeys: Vec<Passkey> = credentials
                .iter()
                .filter(|c| c.kind == CredentialKind::Passkey)
                .map(|c| decode(&c.credential))
                .collect::<Result<_, _>>()?;
            if passkeys.is_empty() {
                return Err(refuse(StatusCode::BAD_REQUEST, &t("webauthn-no-keys")));
            }
            let (options, auth) = webauthn
                .start_passkey_authentication(&passkeys)
                .map_err(internal)?;
            (options, json!({ "kind": "passkey", "state": auth }))
        } else {
            let (options, auth) = webauthn
                .start_securitykey_authentication(&keys)
                .map_err(internal)?;
            (options, json!({ "kind": "security_key", "state": auth }))
        };
        let ceremony = keep(&state, Some(flow.user_id), "second_factor", &saved).await?;
        Ok(Json(json!({ "ceremony": ceremony, "options": options })).into_response())
    };
    answer(run.await)
}

#[derive(Deserialize)]
pub(crate) struct SecondFactorFinish {
    ceremony: String,
    credential: PublicKeyCredential,
}

pub(crate) async fn second_factor_finish(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<SecondFactorFinish>,
) -> Response {
    answer(second_factor_finish_inner(&state, client, &headers, jar, body).await)
}

async fn second_factor_finish_inner(
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
    jar: CookieJar,
    body: SecondFactorFinish,
) -> Result<Response, Refused> {
    if !crate::auth::same_origin(state, &axum::http::Method::POST, headers) {
        return Err(Refused::Page(PageError::forged_form()));
    }
    let webauthn = webauthn(state)?;
    let again = || refuse(StatusCode::UNAUTHORIZED, &t("webauthn-start-again"));
    let Some((flow_hash, flow)) = second_factor::current_flow(state, &jar)
        .await
        .map_err(Refused::Page)?
    else {
        return Err(again());
    };
    if flow.failures >= second_factor::FLOW_ATTEMPTS {
        state.store.end_login_flow(&flow_hash).await?;
        return Err(again());
    }
    let (owner, saved) = take(state, &body.ceremony, "second_factor").await?;
    if owner != Some(flow.user_id) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            &t("webauthn-other-sign-in"),
        ));
    }
    let user = state.store.get_user(flow.user_id).await?;
    if user.disabled {
        state.store.end_login_flow(&flow_hash).await?;
        return Err(again());
    }
    if let Some(wait) = state.throttle.attempt(&user.username, client.ip.as_deref()) {
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &throttled_message(wait),
        ));
    }
    let kind = match saved["kind"].as_str() {
        Some("security_key") => CredentialKind::SecurityKey,
        _ => CredentialKind::Passkey,
    };
    // The credential the authenticator really used (its raw id, which webauthn-rs checks
    // against the allowed list), of the kind this ceremony offered, read fresh.
    let stored = state
        .store
        .credential_by_credential_id(&credential_id(body.credential.raw_id.as_ref()))
        .await?
        .filter(|c| c.user_id == user.id && c.kind == kind);
    let Some(stored) = stored else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            &t("webauthn-not-your-key"),
        ));
    };
    let record: Value = decode(&stored.credential)?;
    let outcome = match kind {
        CredentialKind::SecurityKey => {
            let auth: SecurityKeyAuthentication =
                serde_json::from_value(saved["state"].clone()).map_err(internal)?;
            webauthn.finish_securitykey_authentication(&body.credential, &auth)
        }
        CredentialKind::Passkey => {
            let auth: PasskeyAuthentication =
                serde_json::from_value(saved["state"].clone()).map_err(internal)?;
            webauthn.finish_passkey_authentication(&body.credential, &auth)
        }
    };
    // The ceremony's state holds the counter as it was when it started; the record read now is
    // newer if the key was used meanwhile.
    let stored_counter = record["cred"]["counter"].as_u64().unwrap_or(0);
    let outcome = outcome.and_then(|result| {
        let counter = u64::from(result.counter());
        if (counter > 0 || stored_counter > 0) && counter <= stored_counter {
            Err(WebauthnError::CredentialPossibleCompromise)
        } else {
            Ok(result)
        }
    });
    let result = match outcome {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Err(cloned(state, &user, &stored, client.ip).await);
        }
        Err(err) => {
            tracing::info!(error = %err, "security key refused");
            let failures = state.store.login_flow_failed(&flow_hash).await?;
            let entry = Actor::user(user.id, &user.username, client.ip)
                .entry("login.failure", user_target(&user))
                .with_detail(json!({ "step": "second_factor", "credential": stored.id }));
            state.store.record(&entry).await?;
            if failures >= second_factor::FLOW_ATTEMPTS {
                state.store.end_login_flow(&flow_hash).await?;
                return Err(again());
            }
            return Err(refuse(StatusCode::UNAUTHORIZED, &t("webauthn-key-refused")));
        }
    };
    let updated = match kind {
        CredentialKind::SecurityKey => {
            let mut key: SecurityKey = decode(&stored.credential)?;
            key.update_credential(&result)
                .filter(|changed| *changed)
                .map(|_| encode(&key))
                .transpose()?
        }
        CredentialKind::Passkey => {
            let mut key: Passkey = decode(&stored.credential)?;
            key.update_credential(&result)
                .filter(|changed| *changed)
                .map(|_| encode(&key))
                .transpose()?
        }
    };
    state
        .store
        .credential_used(stored.id, updated.as_deref())
        .await?;
    if !state.store.end_login_flow(&flow_hash).await? {
        return Err(again());
    }
    state
        .throttle
        .succeeded(&user.username, client.ip.as_deref());
    let jar = second_factor::forget_flow(state, jar);
    let added = [key_amr(result.backup_eligible()), "mfa"];
    let (jar, amr) = session_cookie::after_flow(state, jar, &user, &flow, &added, client)
        .await
        .map_err(Refused::Page)?;
    let Some(amr) = amr else {
        return Ok((jar, Json(json!({ "redirect": "/login" }))).into_response());
    };
    let redirect = second_factor::after_second_factor(&flow, &amr);
    Ok((jar, Json(json!({ "redirect": redirect }))).into_response())
}

// ---- managing credentials -------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct RenameForm {
    csrf: String,
    name: String,
}

pub(crate) async fn rename(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<RenameForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        return Ok(axum::response::Redirect::to("/login").into_response());
    };
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(PageError::BadRequest(
            "A name has 1 to 64 characters. Go back and try again.".into(),
        ));
    }
    let user = &session.user;
    let entry = Actor::user(user.id, &user.username, client.ip)
        .entry("webauthn.rename", user_target(user))
        .with_detail(json!({ "credential": id, "name": name }));
    state
        .store
        .rename_credential(user.id, id, name, &entry)
        .await?;
    Ok(axum::response::Redirect::to("/account/security").into_response())
}

#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    csrf: String,
    password: String,
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<RemoveForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return Err(PageError::forged_form());
    }
    let Some(session) = session_from_cookies(&state, &headers).await? else {
        return Ok(axum::response::Redirect::to("/login").into_response());
    };
    if let Err(message) =
        super::account::password_again(&state, &session, form.password, client.ip.as_deref())
            .await?
    {
        return Err(PageError::Forbidden(message));
    }
    let user = &session.user;
    let entry = Actor::user(user.id, &user.username, client.ip)
        .entry("webauthn.remove", user_target(user))
        .with_detail(json!({ "credential": id }));
    state.store.remove_credential(user.id, id, &entry).await?;
    Ok(axum::response::Redirect::to("/account/security").into_response())
}

/// The ceremonies' checks as the pages run them, minus the store: for the fuzz target
/// `webauthn`, through [`crate::fuzzing`].
pub(crate) mod fuzzing {
    use super::*;

    fn described(refused: Refused) -> String {
        match refused {
            Refused::Page(err) => format!("{err:?}"),
            Refused::Json(status, message) => format!("{status}: {message}"),
        }
    }

    /// A passkey registration answer checked against the ceremony's saved state; if accepted,
    /// the id the credential is filed under and the record stored for it.
    pub(crate) fn register_passkey(
        webauthn: &Webauthn,
        saved_state: &Value,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<(String, String), String> {
        let registered =
            finish_registration(webauthn, CredentialKind::Passkey, saved_state, credential)
                .map_err(described)?;
        Ok((
            credential_id(&registered.raw_id),
            registered.record.to_string(),
        ))
    }

    /// A passkey sign-in answer checked as the sign-in page checks it, with `stored` standing
    /// for the store: a credential id to its owner and record. If accepted: the owner, and the
    /// record to store back if it changed.
    pub(crate) fn sign_in_with_passkey(
        webauthn: &Webauthn,
        saved: Value,
        credential: &PublicKeyCredential,
        stored: impl Fn(&str) -> Option<(Uuid, String)>,
    ) -> Result<(Uuid, Option<String>), String> {
        let authentication: DiscoverableAuthentication =
            serde_json::from_value(saved).map_err(|e| e.to_string())?;
        let (handle, raw_id) = webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|e| e.to_string())?;
        let (owner, record) = stored(&credential_id(raw_id))
            .filter(|(owner, _)| *owner == handle)
            .ok_or("unknown passkey")?;
        match verify_passkey(webauthn, authentication, credential, &record).map_err(described)? {
            Ok((_, updated)) => Ok((owner, updated)),
            Err(err) => Err(err.to_string()),
        }
    }
}
