//! Second factors and sign-in abuse: TOTP enrolment and sign-in with codes computed by Debian's
//! `oathtool` (not Stackgate's own TOTP code), replay refusal, single-use recovery codes, the
//! `amr`/`acr` an app receives, removing a factor only with the password, and growing delays
//! after failed sign-ins.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stackgate_identity::{Clock, SystemClock};
use stackgate_testkit::{
    ADMIN_PASSWORD, TestServer, decode_entities, hidden_field, oathtool, on_both_backends,
    sign_in_and_authorize,
};

/// A page's text.
pub(crate) async fn get(browser: &reqwest::Client, url: String) -> String {
    browser.get(url).send().await.unwrap().text().await.unwrap()
}

/// A form posted from Stackgate's own pages (with their `Origin`).
pub(crate) async fn post(
    server: &TestServer,
    browser: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    for (name, value) in form {
        if name.contains("password") || *name == "code" {
            stackgate_testkit::used_secret(value);
        }
    }
    browser
        .post(server.url(path))
        .header("origin", server.base_url.as_str())
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Enrols the admin's authenticator app; returns its base32 secret and the step used.
pub(crate) async fn enrol_totp(server: &TestServer, browser: &reqwest::Client) -> (String, i64) {
    let page = get(browser, server.url("/account/totp")).await;
    assert!(page.contains("<svg"), "a QR code, rendered on the server");
    let secret: String = page
        .split("id=\"secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    stackgate_testkit::used_secret(&secret);
    let now = SystemClock.unix();
    let csrf = hidden_field(&page, "csrf");
    let code = oathtool(&secret, now);
    let wrong = post(
        server,
        browser,
        "/account/totp",
        &[
            ("csrf", &csrf),
            ("code", "000000"),
            ("password", ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let no_password = post(
        server,
        browser,
        "/account/totp",
        &[("csrf", &csrf), ("code", &code), ("password", "not it")],
    )
    .await;
    assert_eq!(
        no_password.status(),
        StatusCode::UNAUTHORIZED,
        "adding a factor takes the password"
    );
    let done = post(
        server,
        browser,
        "/account/totp",
        &[
            ("csrf", &csrf),
            ("code", &code),
            ("password", ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let security = get(browser, server.url("/account/security")).await;
    assert!(security.contains("Set up."), "{security}");
    (secret, now / 30)
}

/// Signs in with the password; returns the browser, now at the second-factor step.
pub(crate) async fn password_step(
    server: &TestServer,
    password: &str,
) -> (reqwest::Client, reqwest::Response) {
    let browser = server.browser();
    let page = get(&browser, server.url("/login")).await;
    let response = post(
        server,
        &browser,
        "/login",
        &[
            ("csrf", &hidden_field(&page, "csrf")),
            ("username", "root"),
            ("password", password),
        ],
    )
    .await;
    (browser, response)
}

pub(crate) async fn second_factor(
    server: &TestServer,
    browser: &reqwest::Client,
    code: &str,
) -> reqwest::Response {
    let page = get(browser, server.url("/login/second-factor")).await;
    post(
        server,
        browser,
        "/login/second-factor",
        &[("csrf", &hidden_field(&page, "csrf")), ("code", code)],
    )
    .await
}

pub(crate) async fn signed_in(server: &TestServer, browser: &reqwest::Client) -> bool {
    get(browser, server.url("/"))
        .await
        .contains("You are signed in as")
}

/// The claims of an ID token obtained through `browser`'s session, for a new client `app`.
pub(crate) async fn id_token_claims(
    server: &TestServer,
    admin_token: &str,
    browser: &reqwest::Client,
    app: &str,
) -> Value {
    id_token_claims_as(server, admin_token, browser, app, "root").await
}

/// The same for `user`'s session.
pub(crate) async fn id_token_claims_as(
    server: &TestServer,
    admin_token: &str,
    browser: &reqwest::Client,
    app: &str,
    user: &str,
) -> Value {
    let created: Value = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(admin_token)
        .json(&json!({ "id": app, "name": app, "redirect_uris": ["https://wiki.example.org/cb"], "first_party": true }))
        .send().await.unwrap().json().await.unwrap();
    let verifier = "v".repeat(50);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let url = server.url(&format!("/authorize?response_type=code&client_id={app}&redirect_uri=https://wiki.example.org/cb&scope=openid&code_challenge={challenge}&code_challenge_method=S256"));
    let back = sign_in_and_authorize(server, browser, &url, user, ADMIN_PASSWORD).await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(app, created["client_secret"].as_str())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://wiki.example.org/cb"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = tokens["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

on_both_backends! {
    totp_codes_from_oathtool_sign_in_once_each => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (secret, enrolled_step) = enrol_totp(&server, &admin.browser).await;

        // The password alone no longer signs in.
        let (browser, response) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(response.headers()["location"], "/login/second-factor");
        assert!(!signed_in(&server, &browser).await, "no session before the second factor");
        // The enrolment code was spent: replaying it is refused.
        let replay = second_factor(&server, &browser, &oathtool(&secret, enrolled_step * 30)).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        // The next step's code (one step of skew allowed) signs in, once.
        let next = oathtool(&secret, (enrolled_step + 1) * 30);
        let ok = second_factor(&server, &browser, &next).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        assert!(signed_in(&server, &browser).await);
        let (again, _) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(second_factor(&server, &again, &next).await.status(), StatusCode::UNAUTHORIZED, "a code works once");
        // A code two steps ahead is outside the allowed skew.
        let far = second_factor(&server, &again, &oathtool(&secret, (enrolled_step + 3) * 30)).await;
        assert_eq!(far.status(), StatusCode::UNAUTHORIZED);

        // Apps see what really happened.
        let claims = id_token_claims(&server, &admin.token, &browser, "wiki").await;
        assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
        assert_eq!(claims["acr"], "2");

        // Removing the app takes the password again.
        let page = get(&browser, server.url("/account/security")).await;
        let csrf = hidden_field(&page, "csrf");
        let wrong = post(&server, &browser, "/account/totp/remove", &[("csrf", &csrf), ("password", "not it")]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(get(&browser, server.url("/account/security")).await.contains("Set up."));
        let removed = post(&server, &browser, "/account/totp/remove", &[("csrf", &csrf), ("password", ADMIN_PASSWORD)]).await;
        assert_eq!(removed.status(), StatusCode::SEE_OTHER);
        let (plain, response) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(response.headers()["location"], "/");
        assert!(signed_in(&server, &plain).await);
        let audit: Value = reqwest::Client::new().get(server.url("/api/v1/audit?limit=200")).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for action in ["totp.enrol", "totp.remove", "login.failure"] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
    };

    a_recovery_code_works_once => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let page = get(&admin.browser, server.url("/account/security")).await;
        let refused = post(&server, &admin.browser, "/account/recovery-codes", &[("csrf", &hidden_field(&page, "csrf")), ("password", "not it")]).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "new codes take the password");
        let shown = post(&server, &admin.browser, "/account/recovery-codes", &[("csrf", &hidden_field(&page, "csrf")), ("password", ADMIN_PASSWORD)]).await;
        assert_eq!(shown.headers()["cache-control"], "no-store");
        let html = decode_entities(&shown.text().await.unwrap());
        let codes: Vec<String> = html.split("<li><code>").skip(1).map(|c| c.split('<').next().unwrap().to_owned()).collect();
        assert_eq!(codes.len(), 10);

        let (browser, response) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(response.headers()["location"], "/login/second-factor", "recovery codes alone make a second factor");
        assert_eq!(second_factor(&server, &browser, &codes[3].to_lowercase()).await.status(), StatusCode::SEE_OTHER);
        assert!(signed_in(&server, &browser).await);
        let (again, _) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(second_factor(&server, &again, &codes[3]).await.status(), StatusCode::UNAUTHORIZED, "spent");
        assert!(!signed_in(&server, &again).await);
        assert!(get(&browser, server.url("/account/security")).await.contains("9 unused recovery codes left"));
    };

    failed_sign_ins_slow_down_the_account_and_the_address => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        for _ in 0..5 {
            let (_, response) = password_step(&server, "wrong password").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        // Now even the right password waits, and is not checked.
        let (browser, response) = password_step(&server, ADMIN_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        assert!(response.text().await.unwrap().contains("Too many failed attempts"));
        assert!(!signed_in(&server, &browser).await);
        let audit: Value = reqwest::Client::new().get(server.url("/api/v1/audit?limit=50")).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
        assert!(audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "login.throttled"));
        // An unknown account is throttled the same way (no way to tell which accounts exist).
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let browser = server.browser();
            let page = get(&browser, server.url("/login")).await;
            let r = post(&server, &browser, "/login", &[("csrf", &hidden_field(&page, "csrf")), ("username", "nobody"), ("password", "x")]).await;
            statuses.push(r.status());
        }
        assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    };
}

on_both_backends! {
    changing_the_password_takes_the_current_one_and_the_policy => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let browser = &admin.browser;
        let page = get(browser, server.url("/account/security")).await;
        let csrf = hidden_field(&page, "csrf");
        let server = &server;
        let change = |current: &'static str, new: &'static str, again: &'static str| {
            let csrf = csrf.clone();
            async move {
                post(server, browser, "/account/password", &[("csrf", &csrf), ("password", current), ("new_password", new), ("new_password_confirm", again)]).await
            }
        };
        let new = "a brand new passphrase of words";
        assert_eq!(change("not it", new, new).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(change(ADMIN_PASSWORD, new, "something else entirely").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let weak = change(ADMIN_PASSWORD, "short", "short").await;
        assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(weak.text().await.unwrap().contains("at least"), "the policy says why");
        // Nothing changed so far; that sign-in stays open on another device.
        let (laptop, signed_in) = password_step(server, ADMIN_PASSWORD).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let security = |b: &reqwest::Client| b.get(server.url("/account/security")).send();
        assert_eq!(security(&laptop).await.unwrap().status(), StatusCode::OK);
        let done = change(ADMIN_PASSWORD, new, new).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert!(get(browser, server.url("/account/security?changed=password")).await.contains("Your password was changed."));
        // The other device's session, made with the old password, is over; this one goes on.
        let after = security(&laptop).await.unwrap();
        assert_eq!(after.status(), StatusCode::SEE_OTHER, "the laptop signs in again");
        assert!(after.headers()["location"].to_str().unwrap().starts_with("/login"));
        assert_eq!(security(browser).await.unwrap().status(), StatusCode::OK);
        assert_eq!(password_step(server, ADMIN_PASSWORD).await.1.status(), StatusCode::UNAUTHORIZED, "the old one no longer works");
        assert_eq!(password_step(server, new).await.1.status(), StatusCode::SEE_OTHER);
    };
}

/// Each passkey sign-in start stores a challenge before anyone is known: an address gets 30 a
/// minute, then a clear 429 with the wait, and the page can say so.
async fn passkey_starts_are_limited(backend: stackgate_testkit::Backend) {
    let Some(server) = stackgate_testkit::TestServer::start_with(
        backend,
        &[("STACKGATE_ISSUER", "http://localhost:{port}")],
    )
    .await
    else {
        return;
    };
    let browser = server.browser();
    let page = browser
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = stackgate_testkit::hidden_field(&page, "csrf");
    let start = || {
        browser
            .post(server.url("/login/passkey/start"))
            .header("origin", server.base_url.as_str())
            .json(&serde_json::json!({ "csrf": csrf }))
            .send()
    };
    for i in 0..30 {
        let response = start().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "start {i}");
    }
    let limited = start().await.unwrap();
    assert_eq!(limited.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Too many passkey sign-ins"),
        "{body}"
    );
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    passkey_sign_ins_are_limited_per_address => passkey_starts_are_limited;
}
