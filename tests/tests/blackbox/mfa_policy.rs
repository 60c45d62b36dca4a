//! Sign-in policy: the global setting and each group's, enrolment at the next sign-in for users
//! without the required factor (their session reaches nothing else until it meets the policy),
//! and step-up through `acr_values`. TOTP codes come from `oathtool`.

use super::mfa::{enrol_totp, get as text, post};
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};
use stackgate_testkit::{ADMIN_PASSWORD, Backend, TestServer, hidden_field, oathtool};
use std::sync::Arc;

/// A browser whose cookies the test can read.
fn browser() -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

/// The browser's session cookie value.
fn session_cookie(jar: &Jar, server: &TestServer) -> String {
    let url = reqwest::Url::parse(&server.base_url).unwrap();
    let header = jar
        .cookies(&url)
        .map(|h| h.to_str().unwrap().to_owned())
        .unwrap_or_default();
    header
        .split("; ")
        .find_map(|c| c.strip_prefix("stackgate_session="))
        .unwrap_or_default()
        .to_owned()
}

async fn sign_in(
    server: &TestServer,
    username: &str,
    password: &str,
    query: &str,
) -> (reqwest::Client, reqwest::Response) {
    let (browser, _) = browser();
    let response = sign_in_on(server, &browser, username, password, query).await;
    (browser, response)
}

async fn sign_in_on(
    server: &TestServer,
    browser: &reqwest::Client,
    username: &str,
    password: &str,
    query: &str,
) -> reqwest::Response {
    let page = text(browser, server.url(&format!("/login{query}"))).await;
    let mut form = vec![
        ("csrf", hidden_field(&page, "csrf")),
        ("username", username.to_owned()),
        ("password", password.to_owned()),
    ];
    let acr = hidden_field(&page, "acr");
    if !acr.is_empty() {
        form.push(("acr", acr));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post(server, browser, "/login", &form).await
}

fn location(response: &reqwest::Response) -> String {
    match response.headers().get("location") {
        Some(to) => to.to_str().unwrap().to_owned(),
        None => format!("(no redirect: {})", response.status()),
    }
}

async fn add_user(server: &TestServer, token: &str, name: &str) {
    let created = reqwest::Client::new()
        .post(server.url("/api/v1/users"))
        .bearer_auth(token)
        .json(&json!({ "username": name, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}

fn authorize_url(server: &TestServer, acr: Option<&str>) -> String {
    let acr = acr.map(|a| format!("&acr_values={a}")).unwrap_or_default();
    server.url(&format!(
        "/authorize?response_type=code&client_id=wiki&redirect_uri=https://wiki.example.org/cb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256{acr}"
    ))
}

async fn register_wiki(server: &TestServer, token: &str) {
    let created = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(token)
        .json(&json!({ "id": "wiki", "name": "Wiki", "redirect_uris": ["https://wiki.example.org/cb"], "first_party": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_policy_leads_users_without_a_factor_through_enrolment() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(server) =
            TestServer::start_with(backend, &[("STACKGATE_MFA_POLICY", "required")]).await
        else {
            continue;
        };
        // The first admin, signed in by the setup page with a password alone, is led to enrolment
        // too: the admin API refuses the session until a second factor is added.
        let (root, root_jar) = browser();
        let link = server.setup_link.clone().unwrap();
        let page = text(&root, link.clone()).await;
        let token = link.split("token=").nth(1).unwrap();
        let done = post(
            &server,
            &root,
            "/setup",
            &[
                ("token", token),
                ("csrf", &hidden_field(&page, "csrf")),
                ("username", "root"),
                ("email", "root@example.org"),
                ("display_name", "Root"),
                ("password", ADMIN_PASSWORD),
                ("password_confirm", ADMIN_PASSWORD),
            ],
        )
        .await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        let refused = root
            .post(server.url("/api/v1/tokens"))
            .header("origin", server.base_url.as_str())
            .json(&json!({ "name": "t" }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let before = session_cookie(&root_jar, &server);
        enrol_totp(&server, &root).await;
        assert_ne!(
            session_cookie(&root_jar, &server),
            before,
            "the session secret rotated at the step-up"
        );
        let created: Value = root
            .post(server.url("/api/v1/tokens"))
            .header("origin", server.base_url.as_str())
            .json(&json!({ "name": "t" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let admin_token = created["token"]
            .as_str()
            .expect("a token once the policy is met")
            .to_owned();
        add_user(&server, &admin_token, "ana").await;
        // With an IP address as issuer there is no WebAuthn: a policy needing it is refused,
        // rather than locking the group's members out.
        let refused = reqwest::Client::new()
            .patch(server.url("/api/v1/groups/admins"))
            .bearer_auth(&admin_token)
            .json(&json!({ "mfa_policy": "phishing_resistant" }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        register_wiki(&server, &admin_token).await;

        let (browser, jar) = browser();
        let page = text(&browser, server.url("/login")).await;
        let response = post(
            &server,
            &browser,
            "/login",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("username", "ana"),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
        assert!(
            location(&response).starts_with("/account/security?required=required"),
            "{}",
            location(&response)
        );
        let page = text(&browser, server.url("/account/security")).await;
        assert!(
            page.contains("id=\"must-add\""),
            "the page says what is required"
        );
        // Nothing else is reachable with this session.
        let home = browser.get(server.url("/")).send().await.unwrap();
        assert_eq!(location(&home), "/account/security");
        let app = browser
            .get(authorize_url(&server, None))
            .send()
            .await
            .unwrap();
        assert_eq!(
            app.status(),
            StatusCode::FORBIDDEN,
            "no app before the factor is added"
        );
        let old_cookie = session_cookie(&jar, &server);

        // Adding the factor upgrades the session in place: apps are reachable, with two factors.
        enrol_totp(&server, &browser).await;
        assert!(
            !text(&browser, server.url("/account/security"))
                .await
                .contains("id=\"must-add\"")
        );
        let app = browser
            .get(authorize_url(&server, None))
            .send()
            .await
            .unwrap();
        assert_eq!(app.status(), StatusCode::SEE_OTHER);
        assert!(
            location(&app).starts_with("https://wiki.example.org/cb?code="),
            "{}",
            location(&app)
        );
        assert_ne!(
            session_cookie(&jar, &server),
            old_cookie,
            "the session secret rotated"
        );
        let stale = server
            .browser()
            .get(server.url("/"))
            .header("cookie", format!("stackgate_session={old_cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            location(&stale),
            "/login",
            "the pre-enrolment secret no longer works"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_policy_and_step_up_through_acr_values() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        // WebAuthn, which a phishing-resistant policy needs, needs a host name.
        if let Some(server) =
            TestServer::start_with(backend, &[("STACKGATE_ISSUER", "http://localhost:{port}")])
                .await
        {
            group_policy_and_step_up(server).await;
        }
    }
}

async fn group_policy_and_step_up(server: TestServer) {
    {
        let admin = server.bootstrap_admin().await;
        register_wiki(&server, &admin.token).await;
        add_user(&server, &admin.token, "bea").await;
        // bea has an authenticator app.
        let (browser, _) = sign_in(&server, "bea", ADMIN_PASSWORD, "").await;
        let (secret, step) = enrol_totp(&server, &browser).await;
        // And recovery codes (which, unlike TOTP steps, do not wait for the clock).
        let page = text(&browser, server.url("/account/security")).await;
        let shown = post(
            &server,
            &browser,
            "/account/recovery-codes",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
        let shown = shown.text().await.unwrap();
        let recovery: Vec<String> = shown
            .split("<li><code>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_owned())
            .collect();
        assert_eq!(recovery.len(), 10);

        // An app asking for acr 2 gets it with the app's code; for acr 3 the sign-in must use a
        // WebAuthn key, which bea does not have: her code is refused at the second step.
        let (browser, response) = sign_in(&server, "bea", ADMIN_PASSWORD, "").await;
        assert_eq!(location(&response), "/login/second-factor");
        let page = text(&browser, server.url("/login/second-factor")).await;
        let ok = post(
            &server,
            &browser,
            "/login/second-factor",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("code", &oathtool(&secret, (step + 1) * 30)),
            ],
        )
        .await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let two = browser
            .get(authorize_url(&server, Some("2")))
            .send()
            .await
            .unwrap();
        assert!(
            location(&two).starts_with("https://wiki.example.org/cb?code="),
            "acr 2 is met: {}",
            location(&two)
        );
        let three = browser
            .get(authorize_url(&server, Some("3")))
            .send()
            .await
            .unwrap();
        let to_login = location(&three);
        assert!(
            to_login.starts_with("/login?") && to_login.contains("acr=3"),
            "step-up: {to_login}"
        );
        // Signed in, she is shown what to add: she has no key to step up with.
        let shown = browser.get(server.url(&to_login)).send().await.unwrap();
        assert_eq!(
            location(&shown),
            "/account/security?needed=phishing_resistant"
        );
        // A browser without a session is told why it must sign in.
        let page = text(&server.browser(), server.url(&to_login)).await;
        assert!(page.contains("asks for a stronger sign-in"));
        // Asking for more never lets the password alone through (a user with a second factor
        // always proves it).
        let (asked, response) = sign_in(
            &server,
            "bea",
            ADMIN_PASSWORD,
            to_login.trim_start_matches("/login"),
        )
        .await;
        assert_eq!(location(&response), "/login/second-factor");
        let home = asked.get(server.url("/")).send().await.unwrap();
        assert_eq!(
            location(&home),
            "/login",
            "no session from the password alone"
        );

        // A group asking for phishing-resistant sign-in holds its members to it.
        let group: Value = reqwest::Client::new()
            .post(server.url("/api/v1/groups"))
            .bearer_auth(&admin.token)
            .json(&json!({ "name": "newsroom" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = group["id"].as_str().unwrap();
        let patched: Value = reqwest::Client::new()
            .patch(server.url(&format!("/api/v1/groups/{id}")))
            .bearer_auth(&admin.token)
            .json(&json!({ "mfa_policy": "phishing_resistant" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(patched["mfa_policy"], "phishing_resistant");
        let bad = reqwest::Client::new()
            .patch(server.url(&format!("/api/v1/groups/{id}")))
            .bearer_auth(&admin.token)
            .json(&json!({ "mfa_policy": "strict" }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let added = reqwest::Client::new()
            .put(server.url(&format!("/api/v1/groups/{id}/members/bea")))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        assert!(added.status().is_success(), "{}", added.status());
        // bea's current session (TOTP) no longer reaches apps...
        let app = browser
            .get(authorize_url(&server, None))
            .send()
            .await
            .unwrap();
        assert_eq!(app.status(), StatusCode::FORBIDDEN);
        // ...and a new sign-in still takes her code, but the session it makes may only add a key.
        let (browser, response) = sign_in(&server, "bea", ADMIN_PASSWORD, "").await;
        assert_eq!(location(&response), "/login/second-factor");
        let page = text(&browser, server.url("/login/second-factor")).await;
        let done = post(
            &server,
            &browser,
            "/login/second-factor",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("code", &recovery[0]),
            ],
        )
        .await;
        assert_eq!(
            location(&done),
            "/account/security?needed=phishing_resistant"
        );
        let page = text(&browser, server.url("/account/security")).await;
        assert!(
            page.contains("id=\"must-add\""),
            "she is told to add a passkey or security key"
        );
        let app = browser
            .get(authorize_url(&server, None))
            .send()
            .await
            .unwrap();
        assert_eq!(
            app.status(),
            StatusCode::FORBIDDEN,
            "and reaches no app before"
        );
    }
}

/// A client `app` with a secret, for exchanging codes.
async fn confidential_client(server: &TestServer, token: &str, app: &str) -> String {
    let created: Value = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(token)
        .json(&json!({ "id": app, "name": app, "redirect_uris": ["https://wiki.example.org/cb"], "first_party": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["client_secret"].as_str().unwrap().to_owned()
}

/// The ID token's claims for the browser's live session; `Err` with where the browser was sent
/// when the session does not suffice.
async fn claims(
    server: &TestServer,
    browser: &reqwest::Client,
    app: (&str, &str),
    acr: Option<&str>,
) -> Result<Value, String> {
    let url = authorize_url(server, acr).replace("client_id=wiki", &format!("client_id={}", app.0));
    let back = browser.get(url).send().await.unwrap();
    let to = location(&back);
    let Some(code) = to.strip_prefix("https://wiki.example.org/cb?code=") else {
        return Err(to);
    };
    let tokens: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(app.0, Some(app.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.split('&').next().unwrap()),
            ("redirect_uri", "https://wiki.example.org/cb"),
            // The verifier of authorize_url's fixed challenge (RFC 7636, appendix B).
            (
                "code_verifier",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            ),
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
        .unwrap();
    use base64::Engine;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    Ok(serde_json::from_slice(&json).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_asking_for_more_steps_up_the_same_session() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(server) = TestServer::start(backend).await else {
            continue;
        };
        let admin = server.bootstrap_admin().await;
        let secret = confidential_client(&server, &admin.token, "notes").await;
        let app = ("notes", secret.as_str());
        add_user(&server, &admin.token, "cy").await;
        // Two browsers signed in with cy's password alone (she has no second factor yet).
        let (browser, jar) = browser();
        sign_in_on(&server, &browser, "cy", ADMIN_PASSWORD, "").await;
        let (other, _) = sign_in(&server, "cy", ADMIN_PASSWORD, "").await;
        let before = claims(&server, &browser, app, None).await.unwrap();
        assert_eq!(before["acr"], "1");
        // She then adds an authenticator app and recovery codes.
        let (totp, step) = enrol_totp(&server, &browser).await;
        let page = text(&browser, server.url("/account/security")).await;
        let shown = post(
            &server,
            &browser,
            "/account/recovery-codes",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
        let recovery = shown
            .split("<li><code>")
            .nth(1)
            .and_then(|c| c.split('<').next())
            .unwrap()
            .to_owned();

        // A step-up is bound to its session: the other browser signs out between its steps,
        // and the factor it then proves makes no session (the password was never asked).
        let to_login = claims(&server, &other, app, Some("2")).await.unwrap_err();
        assert!(to_login.starts_with("/login?"), "{to_login}");
        let step_up = other.get(server.url(&to_login)).send().await.unwrap();
        assert_eq!(location(&step_up), "/login/second-factor");
        let home = text(&other, server.url("/")).await;
        let out = post(
            &server,
            &other,
            "/logout",
            &[("csrf", &hidden_field(&home, "csrf"))],
        )
        .await;
        assert_eq!(out.status(), StatusCode::OK, "signed out");
        let page = text(&other, server.url("/login/second-factor")).await;
        let void = post(
            &server,
            &other,
            "/login/second-factor",
            &[("csrf", &hidden_field(&page, "csrf")), ("code", &recovery)],
        )
        .await;
        assert_eq!(location(&void), "/login");
        let home = other.get(server.url("/")).send().await.unwrap();
        assert_eq!(
            location(&home),
            "/login",
            "no session from the factor alone"
        );

        // The app asks for two factors: cy is asked only for her code, not her password, and
        // keeps her session: same `sid`, new secret, the methods added.
        let to_login = claims(&server, &browser, app, Some("2")).await.unwrap_err();
        let step_up = browser.get(server.url(&to_login)).send().await.unwrap();
        assert_eq!(location(&step_up), "/login/second-factor");
        let page = text(&browser, server.url("/login/second-factor")).await;
        assert!(page.contains("You stay signed in to your other apps"));
        let old_cookie = session_cookie(&jar, &server);
        let wrong = post(
            &server,
            &browser,
            "/login/second-factor",
            &[("csrf", &hidden_field(&page, "csrf")), ("code", "000000")],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let done = post(
            &server,
            &browser,
            "/login/second-factor",
            &[
                ("csrf", &hidden_field(&page, "csrf")),
                ("code", &oathtool(&totp, (step + 1) * 30)),
            ],
        )
        .await;
        let back = location(&done);
        assert!(
            back.starts_with("/authorize?") && back.contains("acr_values=2"),
            "{back}"
        );
        let after = claims(&server, &browser, app, Some("2")).await.unwrap();
        assert_eq!(after["acr"], "2");
        assert_eq!(after["amr"], json!(["pwd", "otp", "mfa"]));
        assert_eq!(after["sid"], before["sid"], "the same session, stepped up");
        assert_ne!(
            session_cookie(&jar, &server),
            old_cookie,
            "its secret rotated"
        );
        let stale = server
            .browser()
            .get(server.url("/"))
            .header("cookie", format!("stackgate_session={old_cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(location(&stale), "/login", "the old secret no longer works");

        // An app that wants a new sign-in (prompt=login) gets one, not a step-up.
        let url = authorize_url(&server, Some("3")).replace("client_id=wiki", "client_id=notes");
        let to_login = location(
            &browser
                .get(format!("{url}&prompt=login"))
                .send()
                .await
                .unwrap(),
        );
        assert!(to_login.contains("reauth=1"), "{to_login}");
        let page = browser.get(server.url(&to_login)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("action=\"/login/identify\"")
        );
    }
}
