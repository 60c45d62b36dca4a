//! A relying party's logout side, for tests: an HTTP server with one back-channel logout
//! endpoint per app name, validating each logout token the way an app must (Back-Channel Logout
//! 1.0 §2.6): signature against the provider's JWKS, `typ`, `iss`, `aud`, the logout event, no
//! `nonce`, `sid`, a fresh `iat`, and a `jti` never seen before.

use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use stackgate_identity::{Clock, SystemClock};
use stackgate_oidc::{BACKCHANNEL_LOGOUT_EVENT, Jwks, KeySet, verify};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

#[derive(Default)]
struct Seen {
    /// Accepted tokens' `sid`, by app.
    accepted: HashMap<String, Vec<String>>,
    rejected: Vec<String>,
    jtis: HashSet<String>,
}

#[derive(Clone)]
struct Inner {
    issuer: String,
    seen: Arc<Mutex<Seen>>,
}

/// The receiving side of several apps.
#[derive(Clone)]
pub struct LogoutReceiver {
    pub base_url: String,
    inner: Inner,
}

impl std::fmt::Debug for LogoutReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutReceiver")
            .field("base_url", &self.base_url)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Body {
    logout_token: String,
}

async fn receive(
    State(inner): State<Inner>,
    Path(app): Path<String>,
    Form(body): Form<Body>,
) -> StatusCode {
    match check(&inner, &app, &body.logout_token).await {
        Ok(sid) => {
            inner
                .seen
                .lock()
                .expect("lock")
                .accepted
                .entry(app)
                .or_default()
                .push(sid);
            StatusCode::OK
        }
        Err(why) => {
            inner
                .seen
                .lock()
                .expect("lock")
                .rejected
                .push(format!("{app}: {why}"));
            StatusCode::BAD_REQUEST
        }
    }
}

async fn check(inner: &Inner, app: &str, token: &str) -> Result<String, String> {
    let jwks: Jwks = reqwest::get(format!("{}/jwks.json", inner.issuer))
        .await
        .map_err(|e| format!("{e:?}"))?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let keys = KeySet::from_jwks(&jwks).map_err(|e| e.to_string())?;
    let claims: serde_json::Value =
        verify(&keys, token, "logout+jwt", &inner.issuer, Some(app)).map_err(|e| e.to_string())?;
    if claims.get("nonce").is_some() {
        return Err("a logout token must not carry a nonce".into());
    }
    if claims["events"].get(BACKCHANNEL_LOGOUT_EVENT).is_none() {
        return Err("no back-channel logout event".into());
    }
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    if (SystemClock.unix() - iat).abs() > 120 {
        return Err("iat is not fresh".into());
    }
    let sid = claims["sid"].as_str().ok_or("no sid")?.to_owned();
    claims["sub"].as_str().ok_or("no sub")?;
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
    if !inner.seen.lock().map_err(|_| "lock")?.jtis.insert(jti) {
        return Err("jti replayed".into());
    }
    Ok(sid)
}

impl LogoutReceiver {
    /// Starts the receiver for tokens from `issuer`.
    pub async fn start(issuer: &str) -> Self {
        let inner = Inner {
            issuer: issuer.to_owned(),
            seen: Arc::default(),
        };
        let app = Router::new()
            .route("/{app}/backchannel", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, inner }
    }

    /// The back-channel logout URI to register for `app`.
    pub fn uri(&self, app: &str) -> String {
        format!("{}/{app}/backchannel", self.base_url)
    }

    /// The `sid`s `app` accepted logout tokens for.
    pub fn accepted(&self, app: &str) -> Vec<String> {
        self.inner
            .seen
            .lock()
            .expect("lock")
            .accepted
            .get(app)
            .cloned()
            .unwrap_or_default()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.inner.seen.lock().expect("lock").rejected.clone()
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
}
