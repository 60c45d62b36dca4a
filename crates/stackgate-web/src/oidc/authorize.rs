//! The authorization endpoint (OpenID Connect Core §3.1.2): validates the request, sends the
//! person to sign in or to consent when needed, and issues a single-use code.
//!
//! Until the client and its redirect URI are known to be valid, errors are shown as a page and
//! never redirected anywhere: an open redirector is the first thing phishers look for.

use super::{CODE_LIFETIME, params::Params};
use crate::{
    auth::session_from_cookies,
    csrf,
    i18n::{t, t_args},
    pages::{PageError, render},
    state::AppState,
};
use axum::{
    Form,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use stackgate_identity::{MfaPolicy, SecretToken};
use stackgate_oidc::{Client, GrantType, OidcError, Scopes, check_challenge, redirect_uri_matches};
use stackgate_store::{NewCode, Session};

/// Sends protocol errors and codes back to a validated redirect URI.
struct Reply<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Reply<'_> {
    fn to(&self, pairs: &[(&str, &str)]) -> Response {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
        if let Some(state) = self.state {
            query.append_pair("state", state);
        }
        // RFC 9207: lets the client check which issuer answered (mix-up defence).
        query.append_pair("iss", self.issuer);
        let separator = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        Redirect::to(&format!(
            "{}{separator}{}",
            self.redirect_uri,
            query.finish()
        ))
        .into_response()
    }

    fn error(&self, err: &OidcError) -> Response {
        self.to(&[
            ("error", err.code()),
            ("error_description", &err.to_string()),
        ])
    }
}

pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    uri: Uri,
) -> Response {
    let params = Params::parse(uri.query().unwrap_or_default().as_bytes());
    authorize(&state, &headers, jar, params, false).await
}

/// As for sign-out: a cross-site POST lacks the session cookie, so it continues as a GET.
pub(crate) async fn start_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    if jar.get(crate::auth::session_cookie_name(&state)).is_none() {
        return Redirect::to(&format!("/authorize?{}", String::from_utf8_lossy(&body)))
            .into_response();
    }
    authorize(&state, &headers, jar, Params::parse(&body), false).await
}

const SCOPE_TEXT: &[(&str, &str)] = &[
    ("openid", "Know who you are when you sign in"),
    ("profile", "See your name and username"),
    ("email", "See your email address"),
    ("groups", "See which groups you belong to"),
    ("offline_access", "Stay connected while you are away"),
];

#[derive(Serialize)]
struct ConsentPage<'a> {
    csrf: String,
    request: String,
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<&'static str>,
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, OidcError>,
    consent_given: bool,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(err) => {
            return PageError::BadRequest(t_args(
                "authorize-malformed",
                &[("reason", err.to_string().into())],
            ))
            .into_response();
        }
    };
    // 1. The client and redirect URI, or an error page.
    let Some(client_id) = params.get("client_id") else {
        return PageError::BadRequest(t("authorize-no-client")).into_response();
    };
    let client = match state.store.get_client(client_id).await {
        Ok(Some(stored)) => stored.client,
        Ok(None) => {
            return PageError::BadRequest(t_args(
                "authorize-unknown-client",
                &[("client", client_id.into())],
            ))
            .into_response();
        }
        Err(err) => return PageError::from(err).into_response(),
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return PageError::BadRequest(t("authorize-no-redirect-uri")).into_response();
    };
    if !redirect_uri_matches(&client.redirect_uris, redirect_uri) {
        tracing::warn!(client = %client.id, "authorization request with an unregistered redirect_uri");
        return PageError::BadRequest(t_args(
            "authorize-unregistered-redirect-uri",
            &[("app", client.name.as_str().into())],
        ))
        .into_response();
    }
    let reply = Reply {
        redirect_uri,
        state: params.get("state"),
        issuer: &state.config.issuer,
    };

    // 2. The request itself; errors now go back to the client.
    let checked = match check_request(&params, &client) {
        Ok(checked) => checked,
        Err(err) => return reply.error(&err),
    };

    // 3. A session fresh enough for the request, or a trip to the sign-in page.
    let session = match session_from_cookies(state, headers).await {
        Ok(session) => session,
        Err(err) => return PageError::from(err).into_response(),
    };
    let now = state.clock.unix();
    let fresh = |s: &Session| match checked.max_age {
        Some(max_age) => s.auth_time.unix_timestamp().saturating_add(max_age) >= now,
        None => true,
    };
    if let Some(s) = &session
        && !crate::auth::meets_policy(state, s)
    {
        // Signed in, but led to enrolment: no app until the required factor is added. An app
        // asking silently hears that the person must sign in (OIDC Core §3.1.2.6).
        if checked.prompt_none {
            return reply.error(&OidcError::LoginRequired(
                "the sign-in does not meet the organisation's policy".into(),
            ));
        }
        return PageError::Forbidden(t("authorize-policy-not-met")).into_response();
    }
    let strong_enough = |s: &Session| checked.acr.met_by(&s.amr);
    // The app wants the person to sign in anew, not only to add a factor to their session.
    let reauth = session
        .as_ref()
        .is_some_and(|s| checked.prompt_login || !fresh(s));
    let session = match session {
        Some(s) if !checked.prompt_login && fresh(&s) && strong_enough(&s) => s,
        _ => {
            if checked.prompt_none {
                return reply.error(&OidcError::LoginRequired(
                    "the user is not signed in".into(),
                ));
            }
            // Coming back, the request must not ask for a new sign-in again.
            let again = format!(
                "/authorize?{}",
                params.encode_without(&["prompt", "max_age"])
            );
            let mut login = url::form_urlencoded::Serializer::new(String::new());
            login.append_pair("return_to", &again);
            if let Some(hint) = params.get("login_hint") {
                login.append_pair("login_hint", hint);
            }
            if checked.acr != MfaPolicy::Optional {
                login.append_pair("acr", acr_of_policy(checked.acr));
            }
            if reauth {
                login.append_pair("reauth", "1");
            }
            return Redirect::to(&format!("/login?{}", login.finish())).into_response();
        }
    };

    // An installed app admits only the groups an admin gave it.
    if let Some(access) = &client.access
        && access
            .role(&session.user.username, &session.groups)
            .is_none()
    {
        if checked.prompt_none {
            return reply.error(&OidcError::AccessDenied(
                "the user may not use this app".into(),
            ));
        }
        return PageError::Forbidden(t_args(
            "authorize-app-closed",
            &[
                ("user", session.user.username.as_str().into()),
                ("app", client.name.as_str().into()),
            ],
        ))
        .into_response();
    }

    // 4. Consent, unless the app is the organisation's own.
    if !client.first_party && !consent_given {
        let granted = match state.store.consent(session.user.id, &client.id).await {
            Ok(granted) => granted,
            Err(err) => return PageError::from(err).into_response(),
        };
        let covered = granted.is_some_and(|g| {
            let granted: Vec<&str> = g.split(' ').collect();
            checked
                .scopes
                .as_string()
                .split(' ')
                .all(|s| granted.contains(&s))
        });
        if !covered || checked.prompt_consent {
            if checked.prompt_none {
                return reply.error(&OidcError::ConsentRequired(
                    "the user has not consented to this app".into(),
                ));
            }
            let Ok((jar, csrf)) = csrf::issue(state, jar) else {
                return PageError::Internal("csrf".into()).into_response();
            };
            let scope_string = checked.scopes.as_string();
            let page = render(
                state,
                "consent.html",
                ConsentPage {
                    csrf,
                    request: params.encode_without(&["prompt"]),
                    client_name: &client.name,
                    username: &session.user.username,
                    scopes: SCOPE_TEXT
                        .iter()
                        .filter(|(s, _)| scope_string.split(' ').any(|x| x == *s))
                        .map(|(_, t)| *t)
                        .collect(),
                },
            );
            return match page {
                Ok(page) => (jar, [(header::CACHE_CONTROL, "no-store")], page).into_response(),
                Err(err) => err.into_response(),
            };
        }
    }

    // 5. The code.
    let Ok(code) = SecretToken::generate("") else {
        return PageError::Internal("random".into()).into_response();
    };
    let new_code = NewCode {
        code_hash: code.hash.clone(),
        client_id: client.id.clone(),
        user_id: session.user.id,
        session_id: session.id,
        redirect_uri: redirect_uri.to_owned(),
        scope: checked.scopes.as_string(),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge: params.get("code_challenge").map(str::to_owned),
        auth_time: session.auth_time.unix_timestamp(),
        acr: Some(acr_of(&session.amr).to_owned()),
        amr: session.amr.clone(),
        lifetime: CODE_LIFETIME,
    };
    if let Err(err) = state.store.insert_code(&new_code).await {
        return PageError::from(err).into_response();
    }
    reply.to(&[("code", &code.plaintext)])
}

pub(crate) struct Checked {
    scopes: Scopes,
    /// What `acr_values` asks the sign-in to have used.
    acr: MfaPolicy,
    prompt_none: bool,
    prompt_login: bool,
    prompt_consent: bool,
    max_age: Option<i64>,
}

pub(crate) fn check_request(params: &Params, client: &Client) -> Result<Checked, OidcError> {
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(OidcError::InvalidRequest(
            "request objects are not supported".into(),
        ));
    }
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OidcError::UnsupportedResponseType(format!(
                "response_type {other:?} is not supported; use code"
            )));
        }
        None => {
            return Err(OidcError::InvalidRequest(
                "response_type is required".into(),
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(OidcError::InvalidRequest(
            "only response_mode=query is supported".into(),
        ));
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(OidcError::UnauthorizedClient(
            "this client may not use the authorization code flow".into(),
        ));
    }
    let scopes = Scopes::parse(params.get("scope").unwrap_or_default(), &client.scopes)?;
    if !scopes.contains("openid") {
        return Err(OidcError::InvalidScope(
            "the openid scope is required".into(),
        ));
    }
    match params.get("code_challenge") {
        Some(challenge) => check_challenge(challenge, params.get("code_challenge_method"))?,
        None if client.require_pkce => {
            return Err(OidcError::InvalidRequest(
                "code_challenge is required (PKCE with S256)".into(),
            ));
        }
        None => {}
    }
    let prompts: Vec<&str> = params
        .get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    for prompt in &prompts {
        if !matches!(*prompt, "none" | "login" | "consent" | "select_account") {
            return Err(OidcError::InvalidRequest(format!(
                "unsupported prompt value {prompt:?}"
            )));
        }
    }
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(OidcError::InvalidRequest(
            "prompt=none cannot be combined with other values".into(),
        ));
    }
    let max_age = params
        .get("max_age")
        .map(|m| {
            m.parse::<i64>().ok().filter(|m| *m >= 0).ok_or_else(|| {
                OidcError::InvalidRequest("max_age must be a number of seconds".into())
            })
        })
        .transpose()?;
    // Step-up: the weakest level the app lists is the least it accepts (`2`: two factors,
    // `3`: phishing-resistant); unknown values are ignored, as the spec allows.
    let acr = params
        .get("acr_values")
        .map(|values| {
            values
                .split(' ')
                .filter(|v| matches!(*v, "1" | "2" | "3"))
                .map(MfaPolicy::from_acr)
                .min()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Ok(Checked {
        acr,
        scopes,
        prompt_none,
        prompt_login: prompts.contains(&"login"),
        prompt_consent: prompts.contains(&"consent"),
        max_age,
    })
}

#[derive(Deserialize)]
pub(crate) struct ConsentForm {
    csrf: String,
    request: String,
    decision: String,
}

/// The consent form's answer: remembered when allowed, an `access_denied` when not.
pub(crate) async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<ConsentForm>,
) -> Response {
    if !csrf::verify(&state, &jar, &headers, &form.csrf) {
        return PageError::Forbidden(t("consent-forged-form")).into_response();
    }
    let params = Params::parse(form.request.as_bytes());
    let Ok(parsed) = &params else {
        return PageError::BadRequest(t("consent-malformed")).into_response();
    };
    let session = match session_from_cookies(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(err) => return PageError::from(err).into_response(),
    };
    if !crate::auth::meets_policy(&state, &session) {
        // Nothing is remembered for a session that may not reach apps yet.
        return Redirect::to("/account/security").into_response();
    }
    let client_id = parsed.get("client_id").unwrap_or_default().to_owned();
    if form.decision == "allow" {
        let scope = parsed.get("scope").unwrap_or_default().to_owned();
        if let Err(err) = state
            .store
            .save_consent(session.user.id, &client_id, &scope)
            .await
        {
            return PageError::from(err).into_response();
        }
        return authorize(&state, &headers, jar, params, true).await;
    }
    // Denied: answer the client, but only at a redirect URI it registered.
    let Ok(Some(stored)) = state.store.get_client(&client_id).await else {
        return PageError::BadRequest(t("consent-unknown-app")).into_response();
    };
    let redirect_uri = parsed.get("redirect_uri").unwrap_or_default();
    if !redirect_uri_matches(&stored.client.redirect_uris, redirect_uri) {
        return PageError::BadRequest(t("consent-unregistered-redirect-uri")).into_response();
    }
    let reply = Reply {
        redirect_uri,
        state: parsed.get("state"),
        issuer: &state.config.issuer,
    };
    reply.error(&OidcError::AccessDenied("the user declined".into()))
}

/// The assurance level a session's methods reach: `3` for two factors one of which is a
/// WebAuthn key (phishing-resistant), `2` for two factors, `1` otherwise.
pub(crate) fn acr_of(amr: &str) -> &'static str {
    let has = |m: &str| amr.split_whitespace().any(|x| x == m);
    match (has("mfa"), has("hwk") || has("swk")) {
        (true, true) => "3",
        (true, false) => "2",
        _ => "1",
    }
}

fn acr_of_policy(policy: MfaPolicy) -> &'static str {
    match policy {
        MfaPolicy::Optional => "1",
        MfaPolicy::Required => "2",
        MfaPolicy::PhishingResistant => "3",
    }
}
