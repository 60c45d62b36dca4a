//! Several replicas on one PostgreSQL database: a session ended through one process is refused
//! by another within a second, through its in-memory cache's notification channel, and still
//! after that channel was killed and came back.

use reqwest::StatusCode;
use serde_json::Value;
use stackgate_oidc::MasterKey;
use stackgate_testkit::{ADMIN_PASSWORD, Backend, TestServer, binary, hidden_field};
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A second Stackgate process sharing the first one's database, keys and issuer.
struct Replica {
    child: Child,
    base_url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(first: &TestServer, master_key: &str, dir: &std::path::Path) -> Self {
        Self::start_with(first, master_key, dir, &[]).await
    }

    async fn start_with(
        first: &TestServer,
        master_key: &str,
        dir: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary())
            .arg("serve")
            .env("STACKGATE_DATA_DIR", dir)
            .env("STACKGATE_DATABASE_URL", &first.config.database_url)
            .env("STACKGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STACKGATE_ISSUER", &first.base_url)
            .env("STACKGATE_MASTER_KEY", master_key)
            .env("STACKGATE_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let replica = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        replica.wait_for_watch(1).await;
        replica
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn watch_metrics(&self) -> Option<(i64, i64)> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        };
        Some((
            value("stackgate_session_watch_connected ")?,
            value("stackgate_session_watch_connections ")?,
        ))
    }

    /// Waits until the notification channel is proven alive on its `connections`-th connection.
    async fn wait_for_watch(&self, connections: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((1, n)) = self.watch_metrics().await
                && n >= connections
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the replica's notification channel did not come up");
    }

    /// Kills this replica's listening connection from the database side.
    async fn kill_watch_connection(&self, database_url: &str) {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(format!("stackgate-session-watch-{}", self.child.id()))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(killed, vec![(true,)], "exactly the replica's listener");
        pool.close().await;
    }
}

/// A browser signed in on the first server (cookies are per host, so the replica sees them).
async fn signed_in_browser(server: &TestServer) -> reqwest::Client {
    let browser = server.browser();
    let page = browser.get(server.url("/login")).send().await.unwrap();
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
    let done = browser
        .post(server.url("/login"))
        .header("origin", server.base_url.as_str())
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "root"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    browser
}

async fn status_on(replica: &Replica, browser: &reqwest::Client) -> StatusCode {
    browser
        .get(replica.url("/api/v1/users?limit=1"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Ends every session of the admin through the first server; returns how long the replica took
/// to refuse `browser`'s session. The replica's cache holds the session when this starts.
async fn time_to_refusal(
    server: &TestServer,
    replica: &Replica,
    browser: &reqwest::Client,
    token: &str,
    root: &str,
) -> Duration {
    for _ in 0..3 {
        assert_eq!(status_on(replica, browser).await, StatusCode::OK);
    }
    let started = Instant::now();
    let ended = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/users/{root}/sign-out")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    loop {
        let status = status_on(replica, browser).await;
        if status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the replica still accepts the ended session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refuses_an_ended_session_within_a_second() {
    let master_key = MasterKey::generate().unwrap();
    let Some(server) =
        TestServer::start_with(Backend::Postgres, &[("STACKGATE_MASTER_KEY", &master_key)]).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let me: Value = reqwest::Client::new()
        .get(server.url("/api/v1/users?q=root"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root = me["items"][0]["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::start(&server, &master_key, dir.path()).await;

    // The channel up: the replica hears of the sign-out.
    let browser = signed_in_browser(&server).await;
    let healthy = time_to_refusal(&server, &replica, &browser, &admin.token, &root).await;

    // The channel just killed: the replica re-checks until it is back.
    let browser = signed_in_browser(&server).await;
    assert_eq!(status_on(&replica, &browser).await, StatusCode::OK);
    replica
        .kill_watch_connection(&server.config.database_url)
        .await;
    let while_down = time_to_refusal(&server, &replica, &browser, &admin.token, &root).await;

    // The channel restored: notifications work again.
    replica.wait_for_watch(2).await;
    let browser = signed_in_browser(&server).await;
    let restored = time_to_refusal(&server, &replica, &browser, &admin.token, &root).await;

    println!(
        "replica refused the ended session after {healthy:?} (channel up), \
         {while_down:?} (channel killed), {restored:?} (channel restored)"
    );
    for elapsed in [healthy, while_down, restored] {
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_or_removed_on_one_replica_applies_on_the_other() {
    let master_key = MasterKey::generate().unwrap();
    let Some(server) = TestServer::start_with(
        Backend::Postgres,
        &[
            ("STACKGATE_MASTER_KEY", &master_key),
            ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let edge = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::start_with(
        &server,
        &master_key,
        dir.path(),
        &[("STACKGATE_PROXY_LISTEN", &edge.to_string())],
    )
    .await;
    let upstream = stackgate_testkit::EchoUpstream::start().await;
    let client = reqwest::Client::builder()
        .resolve("wiki.localhost", edge)
        .build()
        .unwrap();
    let url = format!("http://wiki.localhost:{}/", edge.port());
    let status = || async { client.get(&url).send().await.unwrap().status() };
    assert_eq!(status().await, StatusCode::NOT_FOUND);

    // Added through the first process: the replica's edge serves it.
    let route = crate::proxy::add_route(
        &server,
        &admin,
        serde_json::json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "public_paths": ["/"] }),
    )
    .await;
    let started = Instant::now();
    while status().await != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the replica never took the route"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = started.elapsed();

    // Removed through the first process: gone on the replica too.
    let id = route["id"].as_str().unwrap();
    let (removed, _) = crate::proxy::api(
        &server,
        &admin,
        reqwest::Method::DELETE,
        &format!("/proxy/routes/{id}"),
        None,
    )
    .await;
    assert_eq!(removed, StatusCode::NO_CONTENT);
    let started = Instant::now();
    while status().await != StatusCode::NOT_FOUND {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the replica kept the route"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "replica's edge: route in force {added:?} after it was added elsewhere, gone {:?} after removal",
        started.elapsed()
    );
    drop(replica);
}
