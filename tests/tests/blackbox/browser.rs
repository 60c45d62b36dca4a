//! Passkeys and security keys in a real browser: Debian's Chromium, headless, driven by
//! `tests/browser/webauthn.mjs` (playwright-core) with the DevTools protocol's virtual
//! authenticators. Register a passkey and sign in with it alone; add a USB security key and use
//! it after the password; then present a cloned key (signature counter set back) and see it
//! refused and reported. What apps receive (`amr`, `acr`) is checked through OpenID Connect.
//! Screenshots land in `target/browser-artifacts/`.

use serde_json::Value;
use stackgate_testkit::{Backend, TestServer};
use std::path::PathBuf;

fn with_session(cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("stackgate_session={cookie}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs one of the browser scripts; returns its JSON line.
async fn script(name: &str, server: &TestServer, username: &str, shots: &std::path::Path) -> Value {
    script_with(name, server, username, shots, &[]).await
}

/// Like [`script`], with more arguments after the usual four.
pub(crate) async fn script_with(
    name: &str,
    server: &TestServer,
    username: &str,
    shots: &std::path::Path,
    extra: &[&str],
) -> Value {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        tests.join("browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/browser (tests/run does)"
    );
    let output = tokio::process::Command::new("node")
        .arg(tests.join("browser").join(name))
        .arg(&server.base_url)
        .arg(username)
        .arg(stackgate_testkit::ADMIN_PASSWORD)
        .arg(shots)
        .args(extra)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(
        result.get("failure").is_none(),
        "{}\nat {}:\n{}",
        result["failure"],
        result["failure_url"],
        result["failure_page"]
    );
    result
}

async fn run(backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("STACKGATE_ISSUER", "http://localhost:{port}")]).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-artifacts")
        .join(backend.name());
    let result = script("webauthn.mjs", &server, "root", &shots).await;
    assert_eq!(
        result["passkey_resident"], true,
        "a passkey is discoverable"
    );
    assert!(
        result["autofill_home"]
            .as_str()
            .unwrap()
            .contains("You are signed in as root"),
        "passkey autofill signs in: {result}"
    );
    assert!(
        result["passkey_home"]
            .as_str()
            .unwrap()
            .contains("You are signed in as root"),
        "{result}"
    );
    // Username first: root's step offers her passkey beside her password.
    let offered = result["methods_offered"].as_str().unwrap();
    assert!(
        offered.contains("Signing in as root")
            && offered.contains("Sign in with a passkey")
            && offered.contains("Password"),
        "{result}"
    );
    assert!(
        result["methods_passkey_home"]
            .as_str()
            .unwrap()
            .contains("You are signed in as root"),
        "{result}"
    );

    let passkey = with_session(result["passkey_cookie"].as_str().unwrap());
    let claims = super::mfa::id_token_claims(&server, &admin.token, &passkey, "notes").await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["hwk", "user", "mfa"]),
        "{claims}"
    );
    assert_eq!(claims["acr"], "3");

    let key = with_session(result["security_key_cookie"].as_str().unwrap());
    let claims = super::mfa::id_token_claims(&server, &admin.token, &key, "chat").await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd", "hwk", "mfa"]),
        "{claims}"
    );
    assert_eq!(claims["acr"], "3");

    assert!(
        result["clone_error"]
            .as_str()
            .unwrap()
            .contains("looks copied"),
        "{result}"
    );
    assert!(
        result["clone_url"]
            .as_str()
            .unwrap()
            .ends_with("/login/second-factor"),
        "no session for a cloned key: {result}"
    );
    let audit: Value = reqwest::Client::new()
        .get(server.url("/api/v1/audit?limit=200"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "webauthn.register")
            .count(),
        2
    );
    assert!(
        actions.contains(&"webauthn.cloned"),
        "admins are told: {actions:?}"
    );

    // An admins-group member without a passkey, once the group requires phishing-resistant
    // sign-in, is led through enrolment and reaches nothing before it.
    let api = reqwest::Client::new();
    let patched = api
        .patch(server.url("/api/v1/groups/admins"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({ "mfa_policy": "phishing_resistant" }))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    let created = api
        .post(server.url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({ "username": "ana", "password": stackgate_testkit::ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let added = api
        .put(server.url("/api/v1/groups/admins/members/ana"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let enrolled = script("enrol.mjs", &server, "ana", &shots).await;
    assert!(
        enrolled["notice"]
            .as_str()
            .unwrap()
            .contains("passkey or a security key"),
        "{enrolled}"
    );
    assert_eq!(
        enrolled["home_redirects_to"], "/account/security",
        "nothing else before"
    );
    assert_eq!(enrolled["notice_after"], 0, "{enrolled}");
    assert!(
        enrolled["home"]
            .as_str()
            .unwrap()
            .contains("signed in as ana"),
        "{enrolled}"
    );
    let ana = with_session(enrolled["cookie"].as_str().unwrap());
    let claims = super::mfa::id_token_claims_as(&server, &admin.token, &ana, "board", "ana").await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd", "hwk", "mfa"]),
        "{claims}"
    );
    assert_eq!(claims["acr"], "3");

    // Codes, on a phone-sized screen: TOTP from oathtool, recovery codes, the sign-in delay.
    let created = api
        .post(server.url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({ "username": "cam", "password": stackgate_testkit::ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let codes = script("codes.mjs", &server, "cam", &shots).await;
    assert_eq!(codes["recovery_count"], 10, "{codes}");
    assert_eq!(codes["after_password"], "/login/second-factor", "{codes}");
    assert_eq!(codes["after_code"], "/", "{codes}");
    assert!(
        codes["reused_code_error"]
            .as_str()
            .unwrap()
            .contains("did not work"),
        "{codes}"
    );
    assert_eq!(codes["after_recovery"], "/", "{codes}");
    assert!(
        codes["reused_recovery_error"]
            .as_str()
            .unwrap()
            .contains("did not work"),
        "{codes}"
    );
    let statuses: Vec<u64> = codes["wrong_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    // Four, not five, answer "wrong password" before the delay: the wrong recovery code just
    // before counted against the account too.
    assert_eq!(&statuses[..4], &[401; 4], "{codes}");
    assert!(
        statuses.contains(&429),
        "ten wrong passwords start the delay: {codes}"
    );
    assert!(
        codes["throttled_message"]
            .as_str()
            .unwrap()
            .contains("Too many failed attempts"),
        "{codes}"
    );
    assert!(codes["wait_seconds"].as_u64().unwrap() >= 1, "{codes}");
    assert_eq!(
        codes["after_wait"], "/login/second-factor",
        "after the wait the password works: {codes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_and_security_keys_in_chromium_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_and_security_keys_in_chromium_postgres() {
    run(Backend::Postgres).await;
}
