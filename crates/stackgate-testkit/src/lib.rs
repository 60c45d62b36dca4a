//! Boots the real Stackgate server in-process on `127.0.0.1:0` over a fresh database (a
//! temporary SQLite file, or a new PostgreSQL database), and drives it over real HTTP.
//!
//! ```ignore
//! on_both_backends! {
//!     my_test => |server: TestServer| async move { /* ... */ };
//! }
//! ```

#![forbid(unsafe_code)]

mod log_scan;
mod relying_party;
mod smtp;
mod upstream;

pub use log_scan::{capture_logs, used_secret, used_secrets_in};
pub use relying_party::RelyingParties;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
pub use smtp::{Delivered, SmtpSink};
use stackgate::{Config, server};
use stackgate_identity::{Clock, SystemClock};
use stackgate_store::testing::TestDatabase;
use std::{path::PathBuf, sync::Arc};
pub use upstream::EchoUpstream;

pub use stackgate_store::{Backend, Store};

/// The password every test admin gets.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A running server with its own database and data directory.
pub struct TestServer {
    pub base_url: String,
    pub backend: Backend,
    pub setup_link: Option<String>,
    pub store: Store,
    pub config: Config,
    pub keyring: Arc<stackgate_web::oidc::keyring::Keyring>,
    /// The edge proxy's address, when started with `STACKGATE_PROXY_LISTEN`.
    pub proxy_addr: Option<std::net::SocketAddr>,
    running: Option<server::Running>,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
    _app_uids: AppUids,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The first admin, signed in, with an API token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    pub username: String,
    /// A browser-like client holding the admin's session cookie.
    pub browser: Client,
    /// An API token of the admin's.
    pub token: String,
}

impl TestServer {
    /// Starts a server; `None` (after saying so) when PostgreSQL is asked for but not configured.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// Starts a server with extra `STACKGATE_*` settings.
    pub async fn start_with(backend: Backend, settings: &[(&str, &str)]) -> Option<Self> {
        Self::start_with_clock(backend, settings, Arc::new(SystemClock)).await
    }

    /// Starts a server whose time is `clock` (a `FixedClock` lets tests expire things at once).
    pub async fn start_with_clock(
        backend: Backend,
        settings: &[(&str, &str)],
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        Self::start_full(backend, settings, clock, None).await
    }

    /// Starts a server whose apps that run on Kubernetes go to `kube` (kube's mock service).
    pub async fn start_with_cluster(
        backend: Backend,
        settings: &[(&str, &str)],
        kube: stackgate_apps::kubernetes::KubeDriver,
    ) -> Option<Self> {
        Self::start_full(backend, settings, Arc::new(SystemClock), Some(kube)).await
    }

    async fn start_full(
        backend: Backend,
        settings: &[(&str, &str)],
        clock: Arc<dyn Clock>,
        kube: Option<stackgate_apps::kubernetes::KubeDriver>,
    ) -> Option<Self> {
        capture_logs();
        let app_uids = AppUids::take();
        let db = TestDatabase::create(backend)
            .await
            .expect("test database")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::from_std(restartable_listener()).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut env: Vec<(String, String)> = vec![
            (
                "STACKGATE_DATA_DIR".into(),
                dir.path().display().to_string(),
            ),
            ("STACKGATE_DATABASE_URL".into(), db.url.clone()),
            ("STACKGATE_LISTEN".into(), addr.to_string()),
            (
                "STACKGATE_ISSUER".into(),
                format!("http://127.0.0.1:{}", addr.port()),
            ),
            ("STACKGATE_DATABASE_MAX_CONNECTIONS".into(), "8".into()),
            ("STACKGATE_APPS_UIDS".into(), app_uids.range()),
        ];
        // `{port}` in a setting stands for the port just bound (for an issuer on `localhost`,
        // which WebAuthn needs: it refuses IP addresses).
        let port = addr.port().to_string();
        env.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.replace("{port}", &port))),
        );
        let config = Config::load(None, env).expect("test config");
        let running = server::start_with_cluster(&config, clock, listener, kube)
            .await
            .expect("server starts");
        Some(Self {
            base_url: config.issuer_str().to_owned(),
            backend,
            setup_link: running.setup_link.clone(),
            store: running.store.clone(),
            config,
            keyring: running.keyring.clone(),
            proxy_addr: running.proxy_addr,
            running: Some(running),
            _db: db,
            _dir: dir,
            _app_uids: app_uids,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The value `/metrics` gives for `series` (a name with its labels, as exported:
    /// `stackgate_edge_connections{listener="edge"}`); `None` if it is not exported.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics is text");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// A client that keeps cookies and does not follow redirects, like a careful browser.
    pub fn browser(&self) -> Client {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// A browser for apps behind the edge proxy: like [`Self::browser`], with each of `hosts`
    /// resolving to the proxy (URLs carry the proxy's port: see [`Self::app_url`]).
    pub fn edge_browser(&self, hosts: &[&str]) -> Client {
        let addr = self.proxy_addr.expect("the server runs the edge proxy");
        let mut builder = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none());
        for host in hosts {
            builder = builder.resolve(host, addr);
        }
        builder.build().expect("client")
    }

    /// `http://HOST:PROXYPORT/PATH`.
    pub fn app_url(&self, host: &str, path: &str) -> String {
        let addr = self.proxy_addr.expect("the server runs the edge proxy");
        format!("http://{host}:{}{path}", addr.port())
    }

    /// Creates the first admin through the setup link, as a person would, and an API token.
    pub async fn bootstrap_admin(&self) -> AdminClient {
        let link = self
            .setup_link
            .clone()
            .expect("a fresh server has a setup link");
        let browser = self.browser();
        let token = link
            .split("token=")
            .nth(1)
            .expect("token in link")
            .to_owned();
        used_secret(&token);
        used_secret(ADMIN_PASSWORD);
        let page = browser.get(&link).send().await.expect("setup page");
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = hidden_field(&page.text().await.expect("body"), "csrf");
        let done = browser
            .post(self.url("/setup"))
            .form(&[
                ("token", token.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "root"),
                ("email", "root@example.org"),
                ("display_name", "First Admin"),
                ("password", ADMIN_PASSWORD),
                ("password_confirm", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .expect("setup submit");
        assert_eq!(
            done.status(),
            StatusCode::SEE_OTHER,
            "setup should redirect"
        );
        let created: Value = browser
            .post(self.url("/api/v1/tokens"))
            .json(&json!({ "name": "tests" }))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        used_secrets_in(&created);
        AdminClient {
            username: "root".into(),
            browser,
            token: created["token"].as_str().expect("token string").to_owned(),
        }
    }

    /// Stops the server the way SIGTERM does and starts it again on the same database, data
    /// directory and address (the edge proxy gets a new port).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
        let port = reqwest::Url::parse(&self.base_url)
            .expect("base url")
            .port()
            .expect("port");
        // The port is seldom still held for a moment after the shutdown (seen under parallel
        // tests, cause not found): wait a little for it, and say who holds it if it stays held.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => break listener,
                Err(e) if tries < 100 => {
                    tries += 1;
                    if tries == 1 {
                        eprintln!("restart: 127.0.0.1:{port} is held ({e}); waiting for it");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let ss = std::process::Command::new("ss").args(["-tanpe"]).output();
                    let text = ss.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                    let text = text.unwrap_or_default();
                    let held: Vec<&str> = text
                        .lines()
                        .filter(|l| l.contains(&format!(":{port} ")))
                        .collect();
                    panic!("the same address again: {e}\n{}", held.join("\n"));
                }
            }
        };
        let running = server::start_on(&self.config, Arc::new(SystemClock), listener)
            .await
            .expect("server restarts");
        self.store = running.store.clone();
        self.keyring = running.keyring.clone();
        self.proxy_addr = running.proxy_addr;
        self.running = Some(running);
    }

    /// Stops the server the way SIGTERM does.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }
}

/// Plays the person's browser through an authorization request: follows it to the sign-in page
/// (when there is no session yet), signs in, and returns where Stackgate finally redirects —
/// the client's redirect URI with `code`, `state` and `iss` (or `error`). Consent pages are
/// answered with "allow".
pub async fn authorize_in_browser(
    server: &TestServer,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> reqwest::Url {
    let browser = server.browser();
    sign_in_and_authorize(server, &browser, authorize_url, username, password).await
}

/// Like [`authorize_in_browser`], with a browser of the caller's (so its session carries over).
pub async fn sign_in_and_authorize(
    server: &TestServer,
    browser: &Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> reqwest::Url {
    used_secret(password);
    let base = reqwest::Url::parse(&server.base_url).expect("base url");
    let mut next = reqwest::Url::parse(authorize_url).expect("authorize url");
    for _ in 0..6 {
        if !next.as_str().starts_with(&server.base_url) {
            return next;
        }
        let response = browser.get(next.clone()).send().await.expect("request");
        if response.status() == StatusCode::OK {
            let html = response.text().await.expect("page");
            if html.contains("action=\"/authorize/consent\"") {
                let consent = browser
                    .post(server.url("/authorize/consent"))
                    .header("origin", server.base_url.as_str())
                    .form(&[
                        ("csrf", hidden_field(&html, "csrf").as_str()),
                        ("request", &decode_entities(&hidden_field(&html, "request"))),
                        ("decision", "allow"),
                    ])
                    .send()
                    .await
                    .expect("consent");
                next = location(&base, &consent);
                continue;
            }
            assert!(
                html.contains("action=\"/login/identify\"") || html.contains("action=\"/login\""),
                "expected the sign-in page at {next}"
            );
            let signed_in = browser
                .post(server.url("/login"))
                .header("origin", server.base_url.as_str())
                .form(&[
                    ("csrf", hidden_field(&html, "csrf").as_str()),
                    ("username", username),
                    ("password", password),
                    (
                        "return_to",
                        &decode_entities(&hidden_field(&html, "return_to")),
                    ),
                ])
                .send()
                .await
                .expect("sign in");
            assert_eq!(
                signed_in.status(),
                StatusCode::SEE_OTHER,
                "sign-in failed for {username}"
            );
            next = location(&base, &signed_in);
            continue;
        }
        assert!(
            response.status().is_redirection(),
            "{next} answered {}",
            response.status()
        );
        next = location(&base, &response);
    }
    panic!("too many redirects from {authorize_url}");
}

fn location(base: &reqwest::Url, response: &reqwest::Response) -> reqwest::Url {
    let target = response.headers()["location"].to_str().expect("location");
    base.join(target).expect("location url")
}

/// Undoes the HTML escaping of an attribute value.
pub fn decode_entities(value: &str) -> String {
    value
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
}

/// The value of `<input ... name="NAME" value="...">` in a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// The TOTP code Debian's `oathtool` computes for `secret` (base32) at `unix`: an
/// implementation other than Stackgate's own.
pub fn oathtool(secret: &str, unix: i64) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{unix}")])
        .output()
        .expect("oathtool is installed (tests/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Where `cargo build -p stackgate` put the binary (`STACKGATE_BIN` overrides).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("STACKGATE_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("debug").join("stackgate");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p stackgate` first (tests/run does)",
        path.display()
    );
    path
}

/// Declares `mod $name { sqlite, postgres }`, each starting a fresh server and calling `$body`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:expr;)+) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $crate::TestServer::start($crate::Backend::Sqlite).await {
                    ($body)(server).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $crate::TestServer::start($crate::Backend::Postgres).await {
                    ($body)(server).await
                }
            }
        }
    )+};
}

/// Declares `mod $name { sqlite, postgres }`, each calling `$function(backend)`: for tests that
/// start their own server (settings, a catalog, a mock cluster of their own).
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident => $function:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$function($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$function($crate::Backend::Postgres).await
            }
        }
    )+};
}

/// Like [`on_both_backends!`], with extra `STACKGATE_*` settings for every server.
#[macro_export]
macro_rules! on_both_backends_with {
    ($settings:expr; $($name:ident => $body:expr;)+) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $crate::TestServer::start_with($crate::Backend::Sqlite, $settings).await {
                    ($body)(server).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $crate::TestServer::start_with($crate::Backend::Postgres, $settings).await {
                    ($body)(server).await
                }
            }
        }
    )+};
}

/// Ids for the process apps of one test server, apart from those of every server alive beside
/// it: two Stackgates that share ids would end each other's apps at uninstall (as two on one
/// machine would). Eight each, within the default range; given back when the server goes.
struct AppUids(u32);

static APP_UID_SLOTS: std::sync::Mutex<Vec<bool>> = std::sync::Mutex::new(Vec::new());

impl AppUids {
    fn take() -> Self {
        let default = stackgate_apps::app_users::DEFAULT_APP_UIDS;
        let slots = usize::try_from((default.end() - default.start() + 1) / 8).unwrap();
        let mut taken = APP_UID_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        taken.resize(slots, false);
        let slot = taken
            .iter()
            .position(|t| !t)
            .expect("a free slot of ids: at most 75 test servers at once");
        taken[slot] = true;
        Self(u32::try_from(slot).unwrap())
    }

    fn range(&self) -> String {
        let first = stackgate_apps::app_users::DEFAULT_APP_UIDS.start() + self.0 * 8;
        format!("{first}-{}", first + 7)
    }
}

impl Drop for AppUids {
    fn drop(&mut self) {
        let mut taken = APP_UID_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        taken[usize::try_from(self.0).unwrap()] = false;
    }
}

/// A listener on a port `restart` can bind again. A port the kernel picks (`:0`) comes from the
/// range it also gives outgoing connections, and one of the many the tests make could take it
/// while the server is down. So it is taken from 2000-9999: below that range, and below the
/// ports Stackgate gives apps (10000 up), where only another explicit bind can take it.
fn restartable_listener() -> std::net::TcpListener {
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let listener = (ephemeral_start > 10_000)
        .then(|| {
            (0..64).find_map(|_| {
                use std::hash::{BuildHasher, Hasher};
                let random = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                let port = 2_000 + u16::try_from(random % 8_000).unwrap_or(0);
                std::net::TcpListener::bind(("127.0.0.1", port)).ok()
            })
        })
        .flatten()
        .unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    listener.set_nonblocking(true).expect("non-blocking");
    listener
}
