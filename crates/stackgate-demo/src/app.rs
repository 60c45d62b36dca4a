//! The demo's web server: a page that says who is signed in, sign-in, sign-out, and the
//! back-channel logout endpoint.

use crate::{DemoError, logout_token::verify_logout_token};
use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use jsonwebtoken::jwk::JwkSet;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use stackgate_identity::{Clock, SystemClock};
use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

/// Claims the core types do not model: the session id, the groups and the demo's role.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Extra {
    pub sid: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// The role claim the demo's manifest asks Stackgate for.
    #[serde(default)]
    pub demo_role: Option<String>,
}
impl AdditionalClaims for Extra {}

/// The token response with [`Extra`] claims.
pub type Tokens = StandardTokenResponse<
    IdTokenFields<
        Extra,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// `CoreClient` with [`Extra`] claims kept.
pub type Rp = Client<
    Extra,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Where the demo listens and how it reaches Stackgate.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    pub listen: SocketAddr,
    /// The address people use (the redirect URI is `{base_url}/callback`).
    pub base_url: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl DemoSettings {
    /// From the environment Stackgate's process driver sets.
    pub fn from_env() -> Result<Self, DemoError> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| DemoError::Setting(name));
        let port: u16 = var("PORT")?
            .parse()
            .map_err(|_| DemoError::Setting("PORT"))?;
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            base_url: var("DEMO_BASE_URL")?.trim_end_matches('/').to_owned(),
            issuer: var("OIDC_ISSUER")?,
            client_id: var("OIDC_CLIENT_ID")?,
            client_secret: var("OIDC_CLIENT_SECRET")?,
        })
    }
}

struct Pending {
    verifier: String,
    nonce: String,
}

#[derive(Debug, Clone, Serialize)]
struct Signed {
    sub: String,
    name: Option<String>,
    email: Option<String>,
    groups: Vec<String>,
    /// `user` or `admin`, as Stackgate says.
    role: Option<String>,
    sid: String,
    #[serde(skip)]
    id_token: String,
}

#[derive(Default)]
struct Book {
    pending: HashMap<String, Pending>,
    sessions: HashMap<String, Signed>,
    jtis: HashSet<String>,
}

#[derive(Clone)]
struct Demo {
    settings: Arc<DemoSettings>,
    client: Rp,
    end_session: Option<String>,
    jwks_uri: String,
    http: openidconnect::reqwest::Client,
    book: Arc<Mutex<Book>>,
}

impl Demo {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock leaves plain maps behind; they are still usable.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const SESSION_COOKIE: &str = "demo_session";
const LOGIN_COOKIE: &str = "demo_login";

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

fn secure_attr(settings: &DemoSettings) -> &'static str {
    if settings.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(body: &str) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Demo app</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}</style>\
             </head><body><h1>Demo app</h1>{body}</body></html>"
        )),
    )
        .into_response()
}

async fn home(State(demo): State<Demo>, headers: HeaderMap) -> Response {
    let key = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let signed = demo.book().sessions.get(&key).cloned();
    match signed {
        Some(s) => page(&format!(
            "<p id=\"who\">Signed in as <strong>{}</strong> ({}).</p><p>Groups: {}</p>\
             <p>Role here: {}</p><p><a href=\"/logout\">Sign out</a></p>",
            escape(s.name.as_deref().unwrap_or(&s.sub)),
            escape(s.email.as_deref().unwrap_or("no email")),
            escape(&s.groups.join(", ")),
            escape(s.role.as_deref().unwrap_or("none")),
        )),
        None => page(
            "<p id=\"who\">Not signed in.</p><p><a href=\"/login\">Sign in with Stackgate</a></p>",
        ),
    }
}

async fn me(State(demo): State<Demo>, headers: HeaderMap) -> Response {
    let key = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    match demo.book().sessions.get(&key).cloned() {
        Some(s) => Json(s).into_response(),
        None => (StatusCode::UNAUTHORIZED, "signed out").into_response(),
    }
}

async fn login(State(demo): State<Demo>) -> Response {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = demo
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("groups".into()))
        .set_pkce_challenge(challenge)
        .url();
    demo.book().pending.insert(
        state.secret().clone(),
        Pending {
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
                    "{LOGIN_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{}",
                    state.secret(),
                    secure_attr(&demo.settings)
                ),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: String,
    error: Option<String>,
}

fn failed(status: StatusCode, why: &str) -> Response {
    (
        status,
        page(&format!(
            "<p>Sign-in failed: {}</p><p><a href=\"/\">Back</a></p>",
            escape(why)
        )),
    )
        .into_response()
}

async fn callback(
    State(demo): State<Demo>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    // The state must be the one this browser started with.
    if cookie(&headers, LOGIN_COOKIE).as_deref() != Some(back.state.as_str()) {
        return failed(
            StatusCode::BAD_REQUEST,
            "this sign-in was not started in this browser",
        );
    }
    let Some(pending) = demo.book().pending.remove(&back.state) else {
        return failed(StatusCode::BAD_REQUEST, "unknown or used sign-in attempt");
    };
    if let Some(error) = back.error {
        return failed(StatusCode::FORBIDDEN, &error);
    }
    let Some(code) = back.code else {
        return failed(StatusCode::BAD_REQUEST, "no code");
    };
    let request = match demo.client.exchange_code(AuthorizationCode::new(code)) {
        Ok(request) => request,
        Err(err) => return failed(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    let tokens = match request
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&demo.http)
        .await
    {
        Ok(tokens) => tokens,
        Err(err) => return failed(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    let Some(id_token) = tokens.id_token() else {
        return failed(StatusCode::BAD_GATEWAY, "no ID token");
    };
    let claims = match id_token.claims(&demo.client.id_token_verifier(), &Nonce::new(pending.nonce))
    {
        Ok(claims) => claims,
        Err(err) => return failed(StatusCode::BAD_GATEWAY, &err.to_string()),
    };
    let Some(sid) = claims.additional_claims().sid.clone() else {
        return failed(StatusCode::BAD_GATEWAY, "no sid in the ID token");
    };
    let signed = Signed {
        sub: claims.subject().to_string(),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        email: claims.email().map(|e| e.to_string()),
        groups: claims
            .additional_claims()
            .groups
            .clone()
            .unwrap_or_default(),
        role: claims.additional_claims().demo_role.clone(),
        sid,
        id_token: id_token.to_string(),
    };
    let key = CsrfToken::new_random().secret().clone();
    demo.book().sessions.insert(key.clone(), signed);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (
                header::SET_COOKIE,
                format!(
                    "{SESSION_COOKIE}={key}; Path=/; HttpOnly; SameSite=Lax{}",
                    secure_attr(&demo.settings)
                ),
            ),
        ],
    )
        .into_response()
}

/// RP-initiated logout: ends the demo's session and asks Stackgate to end the SSO session.
async fn logout(State(demo): State<Demo>, headers: HeaderMap) -> Response {
    let key = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let signed = demo.book().sessions.remove(&key);
    let target = match (&demo.end_session, signed) {
        (Some(end), Some(s)) => {
            let mut url = match url::Url::parse(end) {
                Ok(url) => url,
                Err(_) => return failed(StatusCode::BAD_GATEWAY, "bad end_session_endpoint"),
            };
            url.query_pairs_mut()
                .append_pair("id_token_hint", &s.id_token)
                .append_pair(
                    "post_logout_redirect_uri",
                    &format!("{}/", demo.settings.base_url),
                );
            url.to_string()
        }
        _ => "/".to_owned(),
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    logout_token: String,
}

async fn back_channel(State(demo): State<Demo>, Form(body): Form<LogoutForm>) -> StatusCode {
    let jwks: JwkSet = match demo.http.get(&demo.jwks_uri).send().await {
        Ok(response) => match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(jwks)) => jwks,
            _ => return StatusCode::BAD_GATEWAY,
        },
        Err(_) => return StatusCode::BAD_GATEWAY,
    };
    let now = SystemClock.unix();
    let settings = &demo.settings;
    match verify_logout_token(
        &body.logout_token,
        &settings.issuer,
        &settings.client_id,
        &jwks,
        now,
    ) {
        Ok(claims) => {
            let mut book = demo.book();
            if !book.jtis.insert(claims.jti) {
                return StatusCode::BAD_REQUEST;
            }
            book.sessions.retain(|_, s| s.sid != claims.sid);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Discovers the provider and serves until the process is stopped.
pub async fn serve(settings: DemoSettings) -> Result<(), DemoError> {
    // Its docs ask for an HTTP client that does not follow redirects (SSRF).
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DemoError::Discovery(e.to_string()))?;
    let issuer =
        IssuerUrl::new(settings.issuer.clone()).map_err(|_| DemoError::Setting("OIDC_ISSUER"))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| DemoError::Discovery(e.to_string()))?;
    let jwks_uri = metadata.jwks_uri().url().to_string();
    // `end_session_endpoint` is not in the core metadata type; read it from the document.
    let end_session = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            settings.issuer
        ))
        .send()
        .await
        .ok()
        .map(|r| r.bytes());
    let end_session = match end_session {
        Some(body) => body
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|d| d["end_session_endpoint"].as_str().map(str::to_owned)),
        None => None,
    };
    let redirect = RedirectUrl::new(format!("{}/callback", settings.base_url))
        .map_err(|_| DemoError::Setting("DEMO_BASE_URL"))?;
    let client = Rp::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let listen = settings.listen;
    let demo = Demo {
        settings: Arc::new(settings),
        client,
        end_session,
        jwks_uri,
        http,
        book: Arc::default(),
    };
    let router = Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", get(logout))
        .route("/backchannel-logout", post(back_channel))
        .route("/healthz", get(healthz))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
