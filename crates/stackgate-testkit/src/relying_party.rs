//! Relying parties for tests: one small web server hosting any number of apps under
//! `/{client_id}/`. Each app signs people in through Stackgate with the `openidconnect` crate
//! (discovery, code flow with PKCE and nonce, ID token verification), keeps its own sessions
//! behind its own cookie, and ends them on back-channel and front-channel logout.
//!
//! Logout tokens are validated the way Back-Channel Logout 1.0 §2.6 asks, by the demo app's
//! checks (`jsonwebtoken` against the provider's published JWKS, not Stackgate's own code):
//! signature, `typ`, `iss`, `aud`, `exp`, the logout event, no `nonce`, `sid`, a fresh `iat`;
//! and here a `jti` never seen before.

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use openidconnect::core::{CoreAuthenticationFlow, CoreProviderMetadata};
use openidconnect::reqwest as rp_reqwest;
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use serde::Deserialize;
// The client type is the demo app's: `sid` (and the groups) kept.
use stackgate_demo::Rp;
use stackgate_identity::{Clock, SystemClock};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

struct Pending {
    app: String,
    verifier: String,
    nonce: String,
}

/// An app's own session of a signed-in person.
#[derive(Debug, Clone)]
pub struct AppSession {
    pub sub: String,
    pub sid: String,
    pub refresh_token: Option<String>,
}

#[derive(Default)]
struct Seen {
    clients: HashMap<String, Rp>,
    /// Login attempts by `state`.
    pending: HashMap<String, Pending>,
    /// Live sessions by app, then by cookie value.
    sessions: HashMap<String, HashMap<String, AppSession>>,
    /// Accepted logout tokens' `sid`, by app.
    accepted: HashMap<String, Vec<String>>,
    rejected: Vec<String>,
    jtis: HashSet<String>,
}

#[derive(Clone)]
struct Inner {
    issuer: String,
    base_url: String,
    http: rp_reqwest::Client,
    seen: Arc<Mutex<Seen>>,
}

impl Inner {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("fixture lock")
    }
}

/// The apps' server.
#[derive(Clone)]
pub struct RelyingParties {
    pub base_url: String,
    inner: Inner,
}

impl std::fmt::Debug for RelyingParties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParties")
            .field("base_url", &self.base_url)
            .finish()
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn random() -> String {
    CsrfToken::new_random().secret().clone()
}

async fn login(State(inner): State<Inner>, Path(app): Path<String>) -> Response {
    let Some(client) = inner.seen().clients.get(&app).cloned() else {
        return (StatusCode::NOT_FOUND, "no such app").into_response();
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    inner.seen().pending.insert(
        state.secret().clone(),
        Pending {
            app: app.clone(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        },
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{app}_login={}; Path=/{app}; HttpOnly; SameSite=Lax",
                    state.secret()
                ),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: String,
    state: String,
}

async fn callback(
    State(inner): State<Inner>,
    Path(app): Path<String>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    // The state must be the one this browser started with.
    if cookie(&headers, &format!("{app}_login")).as_deref() != Some(back.state.as_str()) {
        return (StatusCode::BAD_REQUEST, "state does not match this browser").into_response();
    }
    let (pending, client) = {
        let mut seen = inner.seen();
        let Some(pending) = seen.pending.remove(&back.state) else {
            return (StatusCode::BAD_REQUEST, "unknown state").into_response();
        };
        let Some(client) = seen.clients.get(&pending.app).cloned() else {
            return (StatusCode::NOT_FOUND, "no such app").into_response();
        };
        (pending, client)
    };
    if pending.app != app {
        return (StatusCode::BAD_REQUEST, "state of another app").into_response();
    }
    crate::used_secret(&back.code);
    let exchange = match client.exchange_code(AuthorizationCode::new(back.code)) {
        Ok(request) => {
            request
                .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
                .request_async(&inner.http)
                .await
        }
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let tokens = match exchange {
        Ok(tokens) => tokens,
        Err(err) => return (StatusCode::BAD_GATEWAY, format!("{err:?}")).into_response(),
    };
    let Some(id_token) = tokens.id_token() else {
        return (StatusCode::BAD_GATEWAY, "no ID token").into_response();
    };
    crate::used_secret(tokens.access_token().secret());
    crate::used_secret(&id_token.to_string());
    if let Some(refresh) = tokens.refresh_token() {
        crate::used_secret(refresh.secret());
    }
    let claims = match id_token.claims(&client.id_token_verifier(), &Nonce::new(pending.nonce)) {
        Ok(claims) => claims,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let Some(sid) = claims.additional_claims().sid.clone() else {
        return (StatusCode::BAD_GATEWAY, "no sid in the ID token").into_response();
    };
    let session = AppSession {
        sub: claims.subject().to_string(),
        sid,
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
    };
    let key = random();
    inner
        .seen()
        .sessions
        .entry(app.clone())
        .or_default()
        .insert(key.clone(), session);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("/{app}/me")),
            (
                header::SET_COOKIE,
                format!("{app}_session={key}; Path=/{app}; HttpOnly; SameSite=Lax"),
            ),
        ],
    )
        .into_response()
}

async fn me(State(inner): State<Inner>, Path(app): Path<String>, headers: HeaderMap) -> Response {
    let key = cookie(&headers, &format!("{app}_session")).unwrap_or_default();
    let session = inner
        .seen()
        .sessions
        .get(&app)
        .and_then(|sessions| sessions.get(&key).cloned());
    match session {
        Some(session) => (StatusCode::OK, session.sub).into_response(),
        None => (StatusCode::UNAUTHORIZED, "signed out").into_response(),
    }
}

#[derive(Deserialize)]
struct Body {
    logout_token: String,
}

async fn back_channel(
    State(inner): State<Inner>,
    Path(app): Path<String>,
    Form(body): Form<Body>,
) -> StatusCode {
    match check(&inner, &app, &body.logout_token).await {
        Ok(sid) => {
            let mut seen = inner.seen();
            if let Some(sessions) = seen.sessions.get_mut(&app) {
                sessions.retain(|_, s| s.sid != sid);
            }
            seen.accepted.entry(app).or_default().push(sid);
            StatusCode::OK
        }
        Err(why) => {
            inner.seen().rejected.push(format!("{app}: {why}"));
            StatusCode::BAD_REQUEST
        }
    }
}

#[derive(Deserialize)]
struct FrontChannel {
    iss: String,
    sid: String,
}

/// Front-Channel Logout 1.0 §3: loaded in an iframe of the provider's signed-out page.
async fn front_channel(
    State(inner): State<Inner>,
    Path(app): Path<String>,
    Query(query): Query<FrontChannel>,
) -> StatusCode {
    if query.iss != inner.issuer {
        inner
            .seen()
            .rejected
            .push(format!("{app}: front-channel iss {}", query.iss));
        return StatusCode::BAD_REQUEST;
    }
    if let Some(sessions) = inner.seen().sessions.get_mut(&app) {
        sessions.retain(|_, s| s.sid != query.sid);
    }
    StatusCode::OK
}

async fn check(inner: &Inner, app: &str, token: &str) -> Result<String, String> {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{}/jwks.json", inner.issuer))
        .await
        .map_err(|e| format!("{e:?}"))?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let claims =
        stackgate_demo::verify_logout_token(token, &inner.issuer, app, &jwks, SystemClock.unix())?;
    if !inner.seen().jtis.insert(claims.jti) {
        return Err("jti replayed".into());
    }
    Ok(claims.sid)
}

impl RelyingParties {
    /// Starts the apps' server for tokens from `issuer`.
    pub async fn start(issuer: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let inner = Inner {
            issuer: issuer.to_owned(),
            base_url: base_url.clone(),
            // The crate's docs require an HTTP client that does not follow redirects (SSRF).
            http: rp_reqwest::Client::builder()
                .redirect(rp_reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            seen: Arc::default(),
        };
        let app = Router::new()
            .route("/{app}/login", get(login))
            .route("/{app}/callback", get(callback))
            .route("/{app}/me", get(me))
            .route("/{app}/backchannel", post(back_channel))
            .route("/{app}/frontchannel", get(front_channel))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, inner }
    }

    /// The back-channel logout URI to register for `app`.
    pub fn uri(&self, app: &str) -> String {
        format!("{}/{app}/backchannel", self.base_url)
    }

    pub fn redirect_uri(&self, app: &str) -> String {
        format!("{}/{app}/callback", self.base_url)
    }

    pub fn front_channel_uri(&self, app: &str) -> String {
        format!("{}/{app}/frontchannel", self.base_url)
    }

    /// Where a browser starts signing in to `app`.
    pub fn login_url(&self, app: &str) -> String {
        format!("{}/{app}/login", self.base_url)
    }

    pub fn me_url(&self, app: &str) -> String {
        format!("{}/{app}/me", self.base_url)
    }

    /// Lets `app` sign people in with the client registered as `app` (found through discovery).
    pub async fn enable_sign_in(&self, app: &str, secret: &str) {
        crate::used_secret(secret);
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(self.inner.issuer.clone()).expect("issuer url"),
            &self.inner.http,
        )
        .await
        .expect("discovery");
        let client = Rp::from_provider_metadata(
            metadata,
            ClientId::new(app.to_owned()),
            Some(ClientSecret::new(secret.to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect_uri(app)).expect("redirect url"));
        self.inner.seen().clients.insert(app.to_owned(), client);
    }

    /// `app`'s live sessions.
    pub fn sessions(&self, app: &str) -> Vec<AppSession> {
        self.inner
            .seen()
            .sessions
            .get(app)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Tries `app`'s stored refresh tokens; returns how many the provider still honoured.
    pub async fn refresh(&self, app: &str, sessions: &[AppSession]) -> usize {
        let client = self.inner.seen().clients.get(app).cloned().expect("app");
        let mut honoured = 0;
        for session in sessions {
            let Some(refresh) = &session.refresh_token else {
                continue;
            };
            let refresh = RefreshToken::new(refresh.clone());
            let request = client
                .exchange_refresh_token(&refresh)
                .expect("token endpoint");
            if request.request_async(&self.inner.http).await.is_ok() {
                honoured += 1;
            }
        }
        honoured
    }

    /// The `sid`s `app` accepted logout tokens for.
    pub fn accepted(&self, app: &str) -> Vec<String> {
        self.inner
            .seen()
            .accepted
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.inner.seen().rejected.clone()
    }

    /// Waits (up to `limit`) until every app in `apps` accepted a token.
    pub async fn wait_for(&self, apps: &[&str], limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if apps.iter().all(|a| !self.accepted(a).is_empty()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Hands a raw token to `app`'s endpoint, as an attacker or a buggy provider would.
    pub async fn offer(&self, app: &str, token: &str) -> StatusCode {
        let response = reqwest::Client::new()
            .post(self.uri(app))
            .form(&[("logout_token", token)])
            .send()
            .await
            .expect("post");
        StatusCode::from_u16(response.status().as_u16()).expect("status")
    }

    /// The apps' base URL, for registering loopback redirect URIs.
    pub fn origin(&self) -> &str {
        &self.inner.base_url
    }
}
