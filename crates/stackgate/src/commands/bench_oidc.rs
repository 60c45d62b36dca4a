//! The OpenID provider under load: code exchanges (the sign-in step prepared in advance, as a
//! browser would have done it), refreshes, userinfo and JWKS, each over loopback HTTP with
//! concurrent clients, plus the process's memory. The load generator shares the process and the
//! machine's cores with the server, so the figures are a floor for the server alone.

use super::bench::{bench_server, report};
use crate::{CliError, cli::BenchArgs, config::Config};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use sha2::{Digest, Sha256};
use stackgate_identity::{Actor, NewUser, SecretToken, Target, Uuid};
use stackgate_oidc::NewClient;
use stackgate_store::{NewCode, NewSession};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::Mutex;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const CONCURRENCY: usize = 32;
const REDIRECT: &str = "https://app.bench.example/callback";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The server under test, and how this client authenticates to its token endpoint.
#[derive(Clone)]
struct Server {
    http: Http,
    base: String,
    basic: String,
}

impl Server {
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Bytes, CliError> {
        let what = request.uri().path().to_owned();
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(CliError::Runtime(format!(
                "{what} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body)
    }

    async fn post_token(&self, form: &[(&str, &str)]) -> Result<serde_json::Value, CliError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/token", self.base))
            .header("authorization", &self.basic)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let body = self.send(request).await?;
        serde_json::from_slice(&body).map_err(|e| CliError::Runtime(e.to_string()))
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> Result<(), CliError> {
        let mut request = Request::builder().uri(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        self.send(request).await.map(|_| ())
    }
}

/// Runs `work(i)` for i in 0..n on CONCURRENCY tasks; returns latencies and wall time.
async fn load<F, Fut, T>(n: usize, work: F) -> Result<(Vec<Duration>, Duration, Vec<T>), CliError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, CliError>> + Send,
    T: Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (work, next) = (work.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut outputs = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                outputs.push(work(i).await?);
                samples.push(t.elapsed());
            }
            Ok::<_, CliError>((samples, outputs))
        }));
    }
    let mut samples = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    for task in tasks {
        let (s, o) = task.await.map_err(|e| CliError::Runtime(e.to_string()))??;
        samples.extend(s);
        outputs.extend(o);
    }
    Ok((samples, started.elapsed(), outputs))
}

pub(crate) async fn run(args: &BenchArgs, config: Config) -> Result<(), CliError> {
    let dir = tempfile::tempdir()?;
    let running = bench_server(args, config, dir.path()).await?;
    let store = running.store.clone();
    let base = format!("http://{}", running.local_addr);
    let n = args.oidc_requests as usize;
    let idle_rss = rss_kib();

    // A user with a session, and a first-party confidential client.
    let actor = Actor::system("bench");
    let user = NewUser::parse(
        &format!("oidc-bench-{}", Uuid::new_v4().simple()),
        Some("bench@bench.example"),
        None,
    )?;
    store
        .create_user(
            &user,
            None,
            &[],
            &actor.entry("user.create", Target::System),
        )
        .await?;
    let session_id = Uuid::new_v4();
    let session_secret = SecretToken::generate("")?;
    store
        .create_session(
            &NewSession {
                id: session_id,
                user_id: user.id,
                secret_hash: session_secret.hash,
                lifetime: 86_400,
                amr: "pwd".into(),
                ip: None,
                user_agent: None,
            },
            &actor.entry("session.create", Target::System),
        )
        .await?;
    let client_new = NewClient {
        id: Some(format!("bench-{}", Uuid::new_v4().simple())),
        name: "Bench".into(),
        redirect_uris: vec![REDIRECT.into()],
        first_party: Some(true),
        ..NewClient::default()
    };
    let (client, secret) = stackgate_web::api::clients::register(&store, client_new, &actor)
        .await
        .map_err(|e| CliError::Runtime(e.problem().detail))?;
    let secret = secret.ok_or_else(|| CliError::Runtime("no client secret".into()))?;
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{secret}", client.id))
    );

    // The sign-in step, done in advance: one code per exchange, each with its PKCE pair.
    let verifier = URL_SAFE_NO_PAD.encode(stackgate_identity::random_bytes::<32>()?);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let prepared = Instant::now();
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        let code = SecretToken::generate("")?;
        store
            .insert_code(&NewCode {
                code_hash: code.hash,
                client_id: client.id.clone(),
                user_id: user.id,
                session_id,
                redirect_uri: REDIRECT.into(),
                scope: "openid profile email groups".into(),
                nonce: Some("n".into()),
                code_challenge: Some(challenge.clone()),
                auth_time: store.now_unix(),
                acr: Some("1".into()),
                amr: "pwd".into(),
                lifetime: 3_600,
            })
            .await?;
        codes.push(code.plaintext);
    }
    eprintln!(
        "prepared {n} authorization codes in {:.1} s ({} database)",
        prepared.elapsed().as_secs_f64(),
        store.backend().name()
    );

    let target = Server {
        http: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(CONCURRENCY)
            .build_http(),
        base: base.clone(),
        basic,
    };
    let codes = Arc::new(codes);
    let exchange = {
        let (target, codes) = (target.clone(), codes.clone());
        move |i: usize| {
            let (target, codes, verifier) = (target.clone(), codes.clone(), verifier.clone());
            async move {
                let tokens = target
                    .post_token(&[
                        ("grant_type", "authorization_code"),
                        ("code", &codes[i]),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", &verifier),
                    ])
                    .await?;
                Ok((
                    tokens["access_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    tokens["refresh_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ))
            }
        }
    };
    let (samples, wall, tokens) = load(n, exchange).await?;
    report(
        &format!(
            "POST /token authorization_code (+PKCE, ID token, access token, refresh token), {CONCURRENCY} clients"
        ),
        samples,
        Some(wall),
    );
    let loaded_rss = Mutex::new(rss_kib());

    let tokens = Arc::new(tokens);
    let refresh = {
        let (target, tokens) = (target.clone(), tokens.clone());
        move |i: usize| {
            let (target, tokens) = (target.clone(), tokens.clone());
            async move {
                target
                    .post_token(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &tokens[i].1),
                    ])
                    .await
                    .map(|_| ())
            }
        }
    };
    let (samples, wall, _) = load(n, refresh).await?;
    report(
        &format!("POST /token refresh_token (rotation), {CONCURRENCY} clients"),
        samples,
        Some(wall),
    );

    // Rotation keeps a grant's earlier access tokens valid until they expire: use them in turn.
    let userinfo = {
        let (target, tokens) = (target.clone(), tokens.clone());
        move |i: usize| {
            let (target, tokens) = (target.clone(), tokens.clone());
            async move {
                target
                    .get("/userinfo", Some(&tokens[i % tokens.len()].0))
                    .await
            }
        }
    };
    let (samples, wall, _) = load(n, userinfo).await?;
    report(
        &format!("GET /userinfo, {CONCURRENCY} clients"),
        samples,
        Some(wall),
    );

    let jwks = {
        let target = target.clone();
        move |_: usize| {
            let target = target.clone();
            async move { target.get("/jwks.json", None).await }
        }
    };
    let (samples, wall, _) = load(n, jwks).await?;
    report(
        &format!("GET /jwks.json, {CONCURRENCY} clients"),
        samples,
        Some(wall),
    );
    let peak = (*loaded_rss.lock().await).max(rss_kib());
    println!(
        "RSS of this process (server + load generator): idle {:.1} MiB, under load {:.1} MiB",
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    running.shutdown().await
}
