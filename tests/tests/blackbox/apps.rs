//! Apps installed through Stackgate, end to end with the process driver: the demo app is
//! installed, a person signs in to it through Stackgate, signing out in Stackgate ends the
//! demo's own session (back-channel), and uninstalling leaves no client, secret, route, policy
//! or process behind. A failure at each install step leaves nothing behind either.

use crate::proxy::api;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stackgate_testkit::{
    ADMIN_PASSWORD, AdminClient, TestServer, decode_entities, hidden_field, sign_in_and_authorize,
};
use std::time::Duration;

/// Waits until the install ends; returns the app's final view.
pub(crate) async fn installed(server: &TestServer, admin: &AdminClient, id: &str) -> Value {
    for _ in 0..600 {
        let (status, app) = api(server, admin, Method::GET, &format!("/apps/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{app}");
        if app["status"] != "installing" {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} did not finish installing in 60 s");
}

/// Nothing of `id` is left: no stored app, client, route, env file or process.
pub(crate) async fn nothing_left(server: &TestServer, id: &str, internal_port: Option<u16>) {
    assert!(
        server.store.installed_app(id).await.unwrap().is_none(),
        "app row left"
    );
    assert!(
        server.store.get_client(id).await.unwrap().is_none(),
        "client left"
    );
    assert!(
        !server
            .store
            .proxy_routes()
            .await
            .unwrap()
            .iter()
            .any(|r| r.app == id),
        "route left"
    );
    let dir = server.config.data_dir.join("apps").join(id);
    assert!(!dir.exists(), "{} left", dir.display());
    if let Some(port) = internal_port {
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "the app's process still listens on {port}"
        );
    }
}

/// A person signs in to the demo through Stackgate; returns the demo's `/me` when Stackgate let
/// them through, or Stackgate's own answer when it did not.
async fn demo_sign_in(
    server: &TestServer,
    base_url: &str,
    username: &str,
    password: &str,
) -> (reqwest::Client, reqwest::Response) {
    let host = reqwest::Url::parse(base_url).unwrap();
    let browser = server.edge_browser(&[host.host_str().unwrap()]);
    let login = browser
        .get(format!("{base_url}/login"))
        .send()
        .await
        .unwrap();
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    let to_login = browser.get(&authorize).send().await.unwrap();
    assert_eq!(to_login.status(), StatusCode::SEE_OTHER);
    let page = browser
        .get(server.url(to_login.headers()["location"].to_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed_in = browser
        .post(server.url("/login"))
        .header("origin", server.base_url.as_str())
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("username", username),
            ("password", password),
            (
                "return_to",
                &decode_entities(&hidden_field(&page, "return_to")),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "sign-in failed for {username}"
    );
    let again = browser
        .get(server.url(signed_in.headers()["location"].to_str().unwrap()))
        .send()
        .await
        .unwrap();
    if again.status() != StatusCode::SEE_OTHER {
        return (browser, again);
    }
    let callback = again.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{base_url}/callback")),
        "{callback}"
    );
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let me = browser.get(format!("{base_url}/me")).send().await.unwrap();
    (browser, me)
}

fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url).unwrap().port().unwrap()
}

async fn audit_actions(server: &TestServer, admin: &AdminClient) -> Vec<String> {
    let (_, audit) = api(server, admin, Method::GET, "/audit?limit=500", None).await;
    audit["items"]
        .as_array()
        .or(audit.as_array())
        .into_iter()
        .flatten()
        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
        .collect()
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    the_demo_app_installs_signs_in_signs_out_and_uninstalls_without_a_trace => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (status, catalog) = api(&server, &admin, Method::GET, "/apps/catalog", None).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = catalog.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        for id in ["demo", "nextcloud", "rocketchat", "jitsi", "wordpress", "wekan"] {
            assert!(ids.contains(&id), "{id} missing from the catalog {ids:?}");
        }

        // The plan says what will exist, and creates nothing.
        let (status, plan) = api(&server, &admin, Method::POST, "/apps?dry_run=true", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        let kinds: Vec<&str> = plan["objects"].as_array().unwrap().iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["oidc-client", "env-file", "process", "proxy-route", "access-policy"]);
        nothing_left(&server, "demo", None).await;

        let (status, started) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let app = installed(&server, &admin, "demo").await;
        assert_eq!(app["status"], "installed", "{app}");
        let base_url = app["base_url"].as_str().unwrap().to_owned();
        let proxy_port = server.proxy_addr.unwrap().port();
        assert_eq!(base_url, format!("http://demo.localhost:{proxy_port}"));
        let stored = server.store.installed_app("demo").await.unwrap().unwrap();
        let internal_port = port_of(&stored.internal_url);

        // A second install of the same app is refused, and changes nothing.
        let (status, again) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{again}");

        // The secret reached the app in a file only Stackgate's user can read.
        let env_file = server.config.data_dir.join("apps/demo/app.env");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let env = std::fs::read_to_string(&env_file).unwrap();
        assert!(env.contains("OIDC_CLIENT_SECRET=sgs_"), "the secret is delivered");
        assert!(env.contains(&format!("DEMO_BASE_URL={base_url}")));

        // Run by root (as CI is), Stackgate gives the app a user of its own, with no other
        // group, recorded as the owner of its data folder, which is its working directory.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let pid = app["pid"].as_u64().expect("a pid");
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let field = |name: &str| -> Vec<u32> {
                let line = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
                line.split_whitespace().map(|id| id.parse().unwrap()).collect()
            };
            let (uids, gids, groups) = (field("Uid:"), field("Gid:"), field("Groups:"));
            let uid = uids[0];
            assert!(uids.iter().all(|u| *u == uid), "{uids:?}");
            let data = server.config.data_dir.join("apps/demo/data");
            assert_eq!(std::fs::canonicalize(format!("/proc/{pid}/cwd")).unwrap(), std::fs::canonicalize(&data).unwrap());
            if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
                assert!(stackgate_apps::app_users::DEFAULT_APP_UIDS.contains(&uid), "{uids:?}");
                assert!(gids.iter().all(|g| *g == uid), "{gids:?}");
                assert!(groups.is_empty(), "supplementary groups left: {groups:?}");
                assert_eq!(std::fs::metadata(&data).unwrap().uid(), uid);
                assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
                let data_dir = std::fs::metadata(&server.config.data_dir).unwrap();
                assert_eq!(data_dir.permissions().mode() & 0o777, 0o711);
            } else {
                assert_eq!(uid, std::fs::metadata("/proc/self").unwrap().uid());
            }
        }

        // Sign in to the demo through Stackgate, through the edge.
        let browser = server.edge_browser(&["demo.localhost"]);
        let home = browser.get(format!("{base_url}/")).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        assert!(home.text().await.unwrap().contains("Not signed in"));
        let login = browser.get(format!("{base_url}/login")).send().await.unwrap();
        assert_eq!(login.status(), StatusCode::SEE_OTHER);
        let authorize = login.headers()["location"].to_str().unwrap().to_owned();
        assert!(authorize.starts_with(&server.url("/authorize")), "{authorize}");
        let back = sign_in_and_authorize(&server, &browser, &authorize, "root", ADMIN_PASSWORD).await;
        assert!(back.as_str().starts_with(&format!("{base_url}/callback?")), "{back}");
        let done = browser.get(back).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", done.text().await.unwrap());
        let me: Value = browser.get(format!("{base_url}/me")).send().await.unwrap().json().await.unwrap();
        assert_eq!(me["email"], "root@example.org");
        assert!(me["groups"].as_array().unwrap().iter().any(|g| g == "admins"), "{me}");
        let page = browser.get(format!("{base_url}/")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Signed in as <strong>First Admin</strong>"), "{page}");

        // Signing out in Stackgate ends the demo's own session (back-channel logout).
        let user = server.store.find_user("root").await.unwrap().unwrap();
        let (status, body) = api(&server, &admin, Method::POST, &format!("/users/{}/sign-out", user.id), None).await;
        assert!(status.is_success(), "{status} {body}");
        let mut ended = false;
        for _ in 0..100 {
            let me = browser.get(format!("{base_url}/me")).send().await.unwrap();
            if me.status() == StatusCode::UNAUTHORIZED {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ended, "the demo still holds the session after sign-out in Stackgate");

        // Uninstall: the app's sessions are signed out while it still runs, then nothing is left.
        let (_, me) = demo_sign_in(&server, &base_url, "root", ADMIN_PASSWORD).await;
        assert_eq!(me.status(), StatusCode::OK);
        let (status, body) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        // (The delivery records go with the client; the audit log keeps what happened.)
        let (_, audit) = api(&server, &admin, Method::GET, "/audit?action=app.", None).await;
        let items = audit["items"].as_array().unwrap();
        assert!(
            items.iter().any(|e| e["action"] == "app.sign_out"
                && e["detail"]["reason"] == "app uninstalled"
                && e["detail"]["sessions"] == 1),
            "{audit}"
        );
        assert!(
            items.iter().any(|e| e["action"] == "app.uninstall" && e["detail"]["logout_tokens_delivered"] == 1),
            "the demo took its logout token before it was stopped: {audit}"
        );
        nothing_left(&server, "demo", Some(internal_port)).await;
        let gone = browser.get(format!("{base_url}/")).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND, "the edge no longer routes to it");
        let (status, _) = api(&server, &admin, Method::GET, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let actions = audit_actions(&server, &admin).await;
        for action in ["app.install.start", "app.install", "app.uninstall", "client.delete", "proxy.route.delete"] {
            assert!(actions.iter().any(|a| a == action), "no {action} in the audit log: {actions:?}");
        }
        server.stop().await;
    };

    access_changes_reach_the_edge_at_once => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        for group in ["staff", "editors"] {
            let (status, _) = api(&server, &admin, Method::POST, "/groups", Some(json!({ "name": group }))).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, body) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo", "user_groups": ["nobody"] }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown group is refused: {body}");
        nothing_left(&server, "demo", None).await;
        let (status, body) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "nextcloud" }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("Kubernetes"), "{body}");

        let (status, _) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo", "user_groups": ["staff"] }))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let app = installed(&server, &admin, "demo").await;
        assert_eq!(app["status"], "installed");
        let base_url = app["base_url"].as_str().unwrap().to_owned();
        crate::proxy::user(&server, &admin, "ana", &["staff"]).await;
        crate::proxy::user(&server, &admin, "bob", &[]).await;

        // One person can be given the app by name, with no group.
        crate::proxy::user(&server, &admin, "cy", &[]).await;
        let (status, _) = api(&server, &admin, Method::PUT, "/apps/demo/access", Some(json!({ "user_groups": ["staff", "user:cy"] }))).await;
        assert_eq!(status, StatusCode::OK);
        let me: Value = demo_sign_in(&server, &base_url, "cy", crate::proxy::PASSWORD).await.1.json().await.unwrap();
        assert_eq!(me["role"], "user", "{me}");
        let (status, body) = api(&server, &admin, Method::PUT, "/apps/demo/access", Some(json!({ "user_groups": ["staff", "user:nobody"] }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown user is refused: {body}");
        let (status, _) = api(&server, &admin, Method::PUT, "/apps/demo/access", Some(json!({ "user_groups": ["staff"] }))).await;
        assert_eq!(status, StatusCode::OK);

        // OIDC: the app admits its groups only, and tells each person their role and no more.
        let (_, refused) = demo_sign_in(&server, &base_url, "bob", crate::proxy::PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.text().await.unwrap().contains("is not open to you"));
        let (ana, me) = demo_sign_in(&server, &base_url, "ana", crate::proxy::PASSWORD).await;
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["role"], "user", "{me}");
        let me: Value = demo_sign_in(&server, &base_url, "root", ADMIN_PASSWORD).await.1.json().await.unwrap();
        assert_eq!(me["role"], "admin", "Stackgate's admins administer every app: {me}");
        let groups = |routes: Value| -> Vec<String> {
            routes.as_array().unwrap().iter().find(|r| r["app"] == "demo").unwrap()["groups"]
                .as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_owned()).collect()
        };
        let (_, routes) = api(&server, &admin, Method::GET, "/proxy/routes", None).await;
        assert_eq!(groups(routes), ["staff"]);
        let (status, app) = api(&server, &admin, Method::PUT, "/apps/demo/access", Some(json!({ "user_groups": ["editors"], "admin_groups": ["staff"] }))).await;
        assert_eq!(status, StatusCode::OK, "{app}");
        assert_eq!(app["user_groups"], json!(["editors"]));
        assert_eq!(app["admin_groups"], json!(["staff"]));
        let (_, routes) = api(&server, &admin, Method::GET, "/proxy/routes", None).await;
        assert_eq!(groups(routes), ["editors", "staff"], "the edge follows when the API answers");
        // Ana's role changed: the demo was told to end her session there (back-channel).
        let mut ended = false;
        for _ in 0..100 {
            if ana.get(format!("{base_url}/me")).send().await.unwrap().status() == StatusCode::UNAUTHORIZED {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ended, "a changed role signs the person out of the app");
        let me: Value = demo_sign_in(&server, &base_url, "ana", crate::proxy::PASSWORD).await.1.json().await.unwrap();
        assert_eq!(me["role"], "admin", "the next sign-in carries the new role: {me}");
        let (status, _) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        server.stop().await;
    };
}

/// One server per step, each failing that step on purpose.
async fn failing_step_leaves_nothing(backend: stackgate_testkit::Backend, step: &str) {
    let Some(server) = TestServer::start_with(
        backend,
        &[
            ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
            ("STACKGATE_APPS_TEST_FAIL_STEP", step),
        ],
    )
    .await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let (status, _) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "demo" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let app = installed(&server, &admin, "demo").await;
    assert_eq!(app["status"], "failed", "{app}");
    let error = app["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("step {step} failed")), "{error}");
    let states: Vec<&str> = app["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    let at = stackgate_apps::STEPS
        .iter()
        .position(|s| *s == step)
        .unwrap();
    assert_eq!(states[at], "failed", "{states:?}");
    assert!(states[..at].iter().all(|s| *s == "undone"), "{states:?}");
    assert_eq!(
        kept_files(&server, "demo"),
        if at >= 2 { vec!["app.log"] } else { vec![] },
        "only the output of a process that ran is kept"
    );
    assert!(
        audit_actions(&server, &admin)
            .await
            .iter()
            .any(|a| a == "app.install.failed")
    );
    let (status, body) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "forgetting a failed install: {body}"
    );
    nothing_left(&server, "demo", None).await;
    server.stop().await;
}

/// The files left in an app's directory, sorted.
fn kept_files(server: &TestServer, id: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(server.config.data_dir.join("apps").join(id)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A server with the edge on and its catalog in `catalog`.
async fn start_with_catalog(
    backend: stackgate_testkit::Backend,
    catalog: &std::path::Path,
) -> Option<TestServer> {
    let catalog_dir = catalog.display().to_string();
    TestServer::start_with(
        backend,
        &[
            ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
            ("STACKGATE_APPS_CATALOG_DIR", &catalog_dir),
        ],
    )
    .await
}

/// Installs catalog app `id` and waits until the install ends; returns the app's final view.
pub(crate) async fn install_and_wait(server: &TestServer, admin: &AdminClient, id: &str) -> Value {
    let (status, body) = api(
        server,
        admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": id })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    installed(server, admin, id).await
}

async fn failed_install_keeps_output(backend: stackgate_testkit::Backend) {
    let catalog = tempfile::tempdir().unwrap();
    // Without its base URL the demo exits at start, saying which setting is missing.
    let broken = notes_manifest("1.0.0", "/healthz")
        .replace("      DEMO_BASE_URL: ${base_url}\n", "")
        // The exit is seen at once; the time only keeps a slow machine from failing otherwise.
        .replace("ready_timeout_seconds: 2", "ready_timeout_seconds: 30");
    assert!(!broken.contains("DEMO_BASE_URL"));
    std::fs::write(catalog.path().join("notes.yaml"), broken).unwrap();
    let Some(mut server) = start_with_catalog(backend, catalog.path()).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let app = install_and_wait(&server, &admin, "notes").await;
    assert_eq!(app["status"], "failed", "{app}");
    let log = server
        .config
        .data_dir
        .join("apps")
        .join("notes")
        .join("app.log");
    let error = app["error"].as_str().unwrap();
    assert!(
        error.starts_with("step ready failed: the process exited"),
        "{error}"
    );
    assert!(
        error.ends_with(&format!("its output is in {}", log.display())),
        "{error}"
    );
    let output = std::fs::read_to_string(&log).expect("the output the error points to is there");
    assert!(
        output.contains("setting DEMO_BASE_URL is missing"),
        "{output}"
    );
    assert_eq!(
        kept_files(&server, "notes"),
        ["app.log"],
        "the env file (with the client secret) goes"
    );

    // Installed again without dismissing: the output is the new attempt's alone.
    assert_eq!(
        install_and_wait(&server, &admin, "notes").await["status"],
        "failed"
    );
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        output.matches("setting DEMO_BASE_URL is missing").count(),
        1,
        "{output}"
    );

    let (status, body) = api(&server, &admin, Method::DELETE, "/apps/notes", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    nothing_left(&server, "notes", None).await;

    // A restart drops what failed installs kept: nothing shows them any more.
    assert_eq!(
        install_and_wait(&server, &admin, "notes").await["status"],
        "failed"
    );
    assert!(log.exists());
    server.restart().await;
    nothing_left(&server, "notes", None).await;
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    a_failed_install_keeps_the_apps_output_until_it_is_dismissed => failed_install_keeps_output;
}

macro_rules! each_step {
    ($($step:ident),+) => {$(
        mod $step {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::failing_step_leaves_nothing(stackgate_testkit::Backend::Sqlite, stringify!($step)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::failing_step_leaves_nothing(stackgate_testkit::Backend::Postgres, stringify!($step)).await;
            }
        }
    )+};
}

mod a_failing_install_step_leaves_nothing_once_dismissed {
    use super::failing_step_leaves_nothing;
    each_step!(client, secret, deploy, route, ready);
}

stackgate_testkit::on_both_backends! {
    a_manifest_with_a_bad_field_is_refused_with_its_line => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let manifest = "id: demo\nname: Demo\nversion: 1.0\ndescription: x\ncategory: demo\n\
deploy:\n  process:\n    command: ../bin/app\naccess:\n  roles:\n    claim: sub\n    user: u\n    admin: u\n";
        let (status, body) = api(&server, &admin, Method::POST, "/apps/validate", Some(json!({ "manifest": manifest }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problems = body["problems"].as_array().unwrap();
        let find = |field: &str| problems.iter().find(|p| p["field"] == field).unwrap_or_else(|| panic!("no {field} problem in {body}"));
        assert_eq!(find("version")["line"], 3);
        assert_eq!(find("deploy.process.command")["line"], 8);
        assert_eq!(find("access.roles.admin")["line"], 13);
        assert_eq!(find("access.roles.claim")["line"], 11);
        let (status, body) = api(&server, &admin, Method::POST, "/apps/validate", Some(json!({ "manifest": "id: demo\nname: [unclosed\n" }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["problems"][0]["line"].as_u64().is_some(), "a syntax error has its line: {body}");
        let good = include_str!("../../../charts/catalog/demo.yaml");
        let (status, body) = api(&server, &admin, Method::POST, "/apps/validate", Some(json!({ "manifest": good }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        server.stop().await;
    };
}

/// `stackgate app …` as an admin types it, against a running server.
async fn cli(args: &[&str], token: Option<&str>) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let token = token.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(stackgate_testkit::binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(&args);
        if let Some(token) = token {
            command.env("STACKGATE_API_TOKEN", token);
        }
        command.output().unwrap()
    })
    .await
    .unwrap()
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    the_app_command_line_installs_and_removes_with_progress => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let url = server.base_url.clone();
        let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
        let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

        let catalog = cli(&["app", "catalog"], None).await;
        assert!(catalog.status.success(), "{}", err(&catalog));
        assert!(out(&catalog).contains("demo") && out(&catalog).contains("nextcloud"), "{}", out(&catalog));

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "id: Bad_Id\nname: x\nversion: 1\ndescription: x\ncategory: x\ndeploy:\n  process:\n    command: x\naccess:\n  roles:\n    header: X-Role\n    user: u\n    admin: a\n").unwrap();
        let checked = cli(&["app", "validate", bad.to_str().unwrap()], None).await;
        assert_eq!(checked.status.code(), Some(64), "{}", err(&checked));
        assert!(err(&checked).contains("bad.yaml:line 1, column 5: id:"), "{}", err(&checked));
        assert!(err(&checked).contains("bad.yaml:line 3, column 10: version:"), "{}", err(&checked));

        let refused = cli(&["app", "list", "--url", &url], None).await;
        assert_eq!(refused.status.code(), Some(64));
        assert!(err(&refused).contains("STACKGATE_API_TOKEN"), "{}", err(&refused));

        let token = Some(admin.token.as_str());
        let plan = cli(&["app", "install", "demo", "--dry-run", "--url", &url], token).await;
        assert!(plan.status.success(), "{}", err(&plan));
        assert!(out(&plan).contains("oidc-client") && out(&plan).contains("proxy-route"), "{}", out(&plan));
        assert!(server.store.installed_app("demo").await.unwrap().is_none(), "a dry run installs nothing");

        let installed = cli(&["app", "install", "demo", "--url", &url], token).await;
        assert!(installed.status.success(), "{}", err(&installed));
        assert!(out(&installed).contains("demo is installed: http://demo.localhost:"), "{}", out(&installed));
        for step in stackgate_apps::STEPS {
            assert!(err(&installed).contains(&format!("{step:<8} done")), "no progress for {step}: {}", err(&installed));
        }
        let listed = cli(&["app", "list", "--url", &url], token).await;
        assert!(out(&listed).contains("installed"), "{}", out(&listed));
        let removed = cli(&["app", "uninstall", "demo", "--url", &url], token).await;
        assert!(removed.status.success(), "{}", err(&removed));
        nothing_left(&server, "demo", None).await;
        let missing = cli(&["app", "status", "demo", "--url", &url], token).await;
        assert_eq!(missing.status.code(), Some(64), "{}", err(&missing));
        server.stop().await;
    };
}

/// The demo's manifest as another app, `notes`, at `version`, with `extra` lines in its process.
fn notes_manifest(version: &str, health_path: &str) -> String {
    include_str!("../../../charts/catalog/demo.yaml")
        .replace("id: demo", "id: notes")
        .replace("name: Demo app", "name: Notes")
        .replace("version: 0.1.0", &format!("version: {version}"))
        .replace(
            "health_path: /healthz",
            &format!("health_path: {health_path}"),
        )
        .replace("ready_timeout_seconds: 30", "ready_timeout_seconds: 2")
}

async fn signed_in(server: &TestServer, base_url: &str) -> StatusCode {
    demo_sign_in(server, base_url, "root", ADMIN_PASSWORD)
        .await
        .1
        .status()
}

async fn notes_version(server: &TestServer) -> String {
    server
        .store
        .installed_app("notes")
        .await
        .unwrap()
        .unwrap()
        .version
}

async fn upgrades_and_update_policies(backend: stackgate_testkit::Backend) {
    let dir = tempfile::tempdir().unwrap();
    let write = |version: &str, health: &str| {
        std::fs::write(
            dir.path().join(format!("notes-{version}.yaml")),
            notes_manifest(version, health),
        )
        .unwrap();
    };
    write("1.0.0", "/healthz");
    let Some(server) = start_with_catalog(backend, dir.path()).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "notes", "update_policy": "patch" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let app = installed(&server, &admin, "notes").await;
    assert_eq!(app["status"], "installed", "{app}");
    let base_url = app["base_url"].as_str().unwrap().to_owned();
    assert_eq!(signed_in(&server, &base_url).await, StatusCode::OK);

    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/notes/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing newer yet: {body}");

    // A good new version: same client and secret, new process.
    write("1.0.1", "/healthz");
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/notes/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "1.0.1");
    assert_eq!(
        signed_in(&server, &base_url).await,
        StatusCode::OK,
        "the app still signs people in after the upgrade"
    );

    // A version that never becomes ready is rolled back, and the old one keeps working.
    write("1.0.2", "/never-ready");
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/notes/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("step ready failed") && detail.contains("notes is back on 1.0.1"),
        "{detail}"
    );
    assert_eq!(notes_version(&server).await, "1.0.1");
    assert_eq!(
        signed_in(&server, &base_url).await,
        StatusCode::OK,
        "the old version runs again"
    );

    // The same upgrade with its request cut off while it waits: it still rolls back, and the
    // app is free for the next change.
    let rollbacks = |actions: Vec<String>| {
        actions
            .iter()
            .filter(|a| *a == "app.upgrade.failed")
            .count()
    };
    let before = rollbacks(audit_actions(&server, &admin).await);
    let cut_off = reqwest::Client::new()
        .post(server.url("/api/v1/apps/notes/upgrade"))
        .bearer_auth(&admin.token)
        .json(&json!({}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(cut_off.is_err(), "the request is cut off: {cut_off:?}");
    // One change at a time: while the upgrade waits (2 s), an uninstall or an install of the
    // same app is refused, naming it.
    let busy = "notes is being upgraded; wait until it is done";
    let install_notes = || {
        api(
            &server,
            &admin,
            Method::POST,
            "/apps",
            Some(json!({ "app": "notes" })),
        )
    };
    let (status, body) = api(&server, &admin, Method::DELETE, "/apps/notes", None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::CONFLICT, Some(busy)),
        "{body}"
    );
    let (status, body) = install_notes().await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::CONFLICT, Some(busy)),
        "{body}"
    );
    // The app is free again once the upgrade is over: the install is then refused for what it is.
    let mut detail = busy.to_owned();
    for _ in 0..150 {
        let (_, body) = install_notes().await;
        detail = body["detail"].as_str().unwrap_or_default().to_owned();
        if detail != busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(detail, "notes is installed already");
    assert_eq!(
        rollbacks(audit_actions(&server, &admin).await),
        before + 1,
        "the cut-off upgrade rolled back all the same"
    );
    assert_eq!(notes_version(&server).await, "1.0.1");
    assert_eq!(signed_in(&server, &base_url).await, StatusCode::OK);
    std::fs::remove_file(dir.path().join("notes-1.0.2.yaml")).unwrap();

    // The patch policy takes 1.0.3, not 1.1.0.
    write("1.0.3", "/healthz");
    write("1.1.0", "/healthz");
    let (status, done) = api(&server, &admin, Method::POST, "/apps/updates", None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        done,
        json!([{ "app": "notes", "from": "1.0.1", "to": "1.0.3", "outcome": "updated" }])
    );
    assert_eq!(notes_version(&server).await, "1.0.3");
    let (_, again) = api(&server, &admin, Method::POST, "/apps/updates", None).await;
    assert_eq!(again, json!([]), "nothing more within the policy");

    // An admin moves it on by hand, from the command line.
    let url = server.base_url.clone();
    let moved = cli(
        &[
            "app",
            "upgrade",
            "notes",
            "--version",
            "1.1.0",
            "--url",
            &url,
        ],
        Some(&admin.token),
    )
    .await;
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(String::from_utf8_lossy(&moved.stdout).contains("notes now runs 1.1.0"));
    assert_eq!(signed_in(&server, &base_url).await, StatusCode::OK);

    // A version that wants the edge to protect it gets its new route settings.
    std::fs::write(
        dir.path().join("notes-1.2.0.yaml"),
        notes_manifest("1.2.0", "/healthz").replace(
            "  protect: false",
            "  protect: true\n  public_paths: [/healthz]",
        ),
    )
    .unwrap();
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/notes/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let route = server
        .store
        .proxy_routes()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.app == "notes")
        .unwrap();
    assert_eq!(route.public_paths, ["/healthz"]);
    let host = reqwest::Url::parse(&base_url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let visitor = server.edge_browser(&[host.as_str()]);
    let first = visitor.get(format!("{base_url}/")).send().await.unwrap();
    assert_eq!(
        first.status(),
        StatusCode::FOUND,
        "the edge now asks for a sign-in first"
    );
    let health = visitor
        .get(format!("{base_url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let actions = audit_actions(&server, &admin).await;
    for action in ["app.upgrade", "app.upgrade.failed"] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action}: {actions:?}"
        );
    }
    let (status, _) = api(&server, &admin, Method::DELETE, "/apps/notes", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    nothing_left(&server, "notes", None).await;
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    an_upgrade_rolls_back_when_the_new_version_is_not_ready => upgrades_and_update_policies;
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    the_demo_app_signs_in_and_out_in_chromium => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (status, _) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let app = installed(&server, &admin, "demo").await;
        assert_eq!(app["status"], "installed", "{app}");
        let base_url = app["base_url"].as_str().unwrap().to_owned();
        let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/browser-artifacts/demo")
            .join(server.backend.name());
        let result = crate::browser::script_with("demo.mjs", &server, "root", &shots, &[&base_url]).await;
        assert_eq!(result["before"], "Not signed in.");
        assert_eq!(result["sign_in_page"], server.base_url, "signing in happens at Stackgate");
        assert!(result["signed_in"].as_str().unwrap().starts_with("Signed in as First Admin"), "{result}");
        assert_eq!(result["after"], "Not signed in.", "signing out in Stackgate ends the app's session");
        assert_eq!(result["launcher"], json!(["Demo app"]), "{result}");
        let (status, _) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        server.stop().await;
    };
}

/// The page a browser gets, with its status.
async fn page(browser: &reqwest::Client, url: String) -> (StatusCode, String) {
    let response = browser.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// A person's browser, signed in to Stackgate.
async fn signed_in_browser(server: &TestServer, username: &str) -> reqwest::Client {
    let browser = server.browser();
    let (_, login) = page(&browser, server.url("/login")).await;
    let done = browser
        .post(server.url("/login"))
        .header("origin", server.base_url.as_str())
        .form(&[
            ("csrf", hidden_field(&login, "csrf").as_str()),
            ("username", username),
            ("password", crate::proxy::PASSWORD),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "sign-in of {username}"
    );
    browser
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    admins_install_from_the_admin_page_and_people_see_their_apps => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "ana", &["staff"]).await;
        crate::proxy::user(&server, &admin, "bob", &["press"]).await;
        let ana = signed_in_browser(&server, "ana").await;
        let bob = signed_in_browser(&server, "bob").await;

        // Only admins manage apps.
        let (status, _) = page(&ana, server.url("/admin/apps")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, html) = page(&admin.browser, server.url("/admin/apps")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Install Demo app"), "{html}");
        let csrf = hidden_field(&html, "csrf");
        let install = |csrf: String, groups: &'static str| {
            let browser = admin.browser.clone();
            let url = server.url("/admin/apps/install");
            let origin = server.base_url.clone();
            async move {
                browser
                    .post(url)
                    .header("origin", origin)
                    .form(&[("csrf", csrf.as_str()), ("app", "demo"), ("user_groups", groups), ("admin_groups", "")])
                    .send()
                    .await
                    .unwrap()
            }
        };

        // A forged form and a bad group change nothing; the page says what was wrong.
        let forged = install("forged".into(), "staff").await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let bad = install(csrf.clone(), "staff <script>").await;
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = bad.text().await.unwrap();
        assert!(text.contains("id=\"form-error\"") && !text.contains("<script>"), "{text}");
        nothing_left(&server, "demo", None).await;

        let done = install(csrf.clone(), "staff").await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(done.headers()["location"], "/admin/apps/demo");
        let mut shown = String::new();
        for _ in 0..300 {
            let (status, html) = page(&admin.browser, server.url("/admin/apps/demo")).await;
            assert_eq!(status, StatusCode::OK);
            shown = html;
            if !shown.contains("Installing") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(shown.contains("Installed:"), "{shown}");
        assert!(shown.contains("data-state=\"done\""), "the steps are shown: {shown}");

        // The launcher lists exactly the apps each person may reach.
        let (_, home) = page(&ana, server.url("/")).await;
        assert!(home.contains("data-app=\"demo\""), "{home}");
        let (_, home) = page(&bob, server.url("/")).await;
        assert!(!home.contains("data-app=\"demo\"") && home.contains("No app is open to you yet"), "{home}");
        let (status, _) = api(&server, &admin, Method::PUT, "/apps/demo/access", Some(json!({ "user_groups": ["press"] }))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, home) = page(&ana, server.url("/")).await;
        assert!(!home.contains("data-app=\"demo\""), "the launcher follows the change");
        let (_, home) = page(&bob, server.url("/")).await;
        assert!(home.contains("data-app=\"demo\""));

        // Uninstall from the page; the catalog offers no second install of what is there.
        let (_, html) = page(&admin.browser, server.url("/admin/apps")).await;
        assert!(!html.contains("Install Demo app") && html.contains("Manage Demo app"), "{html}");
        let uninstall = |fields: Vec<(&'static str, String)>| {
            admin
                .browser
                .post(server.url("/admin/apps/demo/uninstall"))
                .header("origin", server.base_url.as_str())
                .form(&fields)
                .send()
        };
        let csrf = hidden_field(&html, "csrf");
        let unconfirmed = uninstall(vec![("csrf", csrf.clone())]).await.unwrap();
        assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(unconfirmed.text().await.unwrap().contains("Tick the box to confirm that you want to uninstall demo"));
        let (status, view) = api(&server, &admin, Method::GET, "/apps/demo", None).await;
        assert_eq!((status, view["status"].as_str()), (StatusCode::OK, Some("installed")), "still there: {view}");
        let gone = uninstall(vec![("csrf", csrf), ("confirm", "yes".into())]).await.unwrap();
        assert_eq!(gone.status(), StatusCode::SEE_OTHER);
        nothing_left(&server, "demo", None).await;
        server.stop().await;
    };
}

/// `stackgate app check` with `password` in its environment.
async fn app_check(
    server: &TestServer,
    token: &str,
    username: &str,
    password: &str,
) -> std::process::Output {
    let args = [
        "app",
        "check",
        "demo",
        "--username",
        username,
        "--url",
        server.base_url.as_str(),
    ]
    .map(str::to_owned);
    let (token, password) = (token.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(stackgate_testkit::binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STACKGATE_API_TOKEN", token)
            .env("STACKGATE_CHECK_PASSWORD", password)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    app_check_drives_a_real_sign_in_and_sign_out_in_chromium => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "ana", &["staff"]).await;
        let (status, _) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo", "user_groups": ["staff"] }))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(installed(&server, &admin, "demo").await["status"], "installed");

        let passed = app_check(&server, &admin.token, "ana", crate::proxy::PASSWORD).await;
        let out = String::from_utf8_lossy(&passed.stdout).into_owned();
        assert!(passed.status.success(), "{out}\n{}", String::from_utf8_lossy(&passed.stderr));
        assert_eq!(out.lines().filter(|l| l.starts_with("PASS")).count(), 6, "{out}");
        assert!(out.contains("all 6 steps passed"), "{out}");

        // A wrong password fails at signing in, and says so; the rest is skipped.
        let failed = app_check(&server, &admin.token, "ana", "not the password").await;
        let out = String::from_utf8_lossy(&failed.stdout).into_owned();
        assert_eq!(failed.status.code(), Some(1), "{out}");
        assert!(out.contains("FAIL  sign in: not sent back to the app"), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("SKIP")).count(), 3, "{out}");
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    after_a_restart_installed_apps_run_again_and_interrupted_installs_are_undone => |server: TestServer| async move {
        let mut server = server;
        let admin = server.bootstrap_admin().await;
        let (status, _) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(installed(&server, &admin, "demo").await["status"], "installed");
        let internal = server.store.installed_app("demo").await.unwrap().unwrap().internal_url;

        // An install a crash interrupted: its row says `installing`, its files are there.
        let ghost = stackgate_store::NewInstall {
            id: "ghost".into(),
            version: "1.0.0".into(),
            manifest: include_str!("../../../charts/catalog/demo.yaml").replace("id: demo", "id: ghost"),
            base_url: "http://ghost.localhost".into(),
            internal_url: "http://127.0.0.1:9".into(),
            user_groups: vec![],
            admin_groups: vec![],
            update_policy: "none".into(),
        };
        let entry = stackgate_identity::Actor::system("test").entry("app.install.start", stackgate_identity::Target::System);
        server.store.begin_app_install(&ghost, &entry).await.unwrap();
        let ghost_dir = server.config.data_dir.join("apps/ghost");
        std::fs::create_dir_all(&ghost_dir).unwrap();
        std::fs::write(ghost_dir.join("app.env"), "OIDC_CLIENT_SECRET=x\n").unwrap();

        server.restart().await;
        let http = reqwest::Client::new();
        let mut answered = false;
        for _ in 0..100 {
            if http.get(format!("{internal}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answered, "the demo runs again after the restart");
        assert_eq!(server.store.installed_app("demo").await.unwrap().unwrap().status, stackgate_store::AppStatus::Installed);
        nothing_left(&server, "ghost", None).await;
        assert!(audit_actions(&server, &admin).await.iter().any(|a| a == "app.install.abandoned"));
        let (status, _) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    a_process_that_dies_is_started_again => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (status, _) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let app = installed(&server, &admin, "demo").await;
        assert_eq!(app["status"], "installed");
        assert_eq!(app["restarts"], 0);
        let pid = app["pid"].as_u64().expect("a pid");
        let internal = server.store.installed_app("demo").await.unwrap().unwrap().internal_url;

        let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        assert!(killed.success());
        let mut back = Value::Null;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, app) = api(&server, &admin, Method::GET, "/apps/demo", None).await;
            let answers = reqwest::get(format!("{internal}/healthz")).await.is_ok_and(|r| r.status().is_success());
            if app["restarts"] == 1 && answers {
                back = app;
                break;
            }
        }
        assert_eq!(back["restarts"], 1, "the supervisor started it again");
        assert_ne!(back["pid"].as_u64(), Some(pid));
        let (status, _) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        nothing_left(&server, "demo", None).await;
        server.stop().await;
    };
}
