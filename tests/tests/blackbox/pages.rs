//! The setup and sign-in pages, as a browser without JavaScript uses them.

use reqwest::StatusCode;
use serde_json::json;
use stackgate_testkit::{ADMIN_PASSWORD, TestServer, hidden_field, on_both_backends};

async fn login(
    server: &TestServer,
    browser: &reqwest::Client,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser
        .get(server.url("/login?return_to=/api/v1/users"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf");
    browser
        .post(server.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("return_to", "/api/v1/users"),
        ])
        .send()
        .await
        .unwrap()
}

on_both_backends! {
    sign_in_and_out_with_a_password => |server: TestServer| async move {
        server.bootstrap_admin().await;
        let browser = server.browser();
        let wrong = login(&server, &browser, "root", "wrong password!!").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let wrong_body = wrong.text().await.unwrap();
        let unknown = login(&server, &browser, "nobody", "wrong password!!").await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let unknown_body = unknown.text().await.unwrap();
        assert!(wrong_body.contains("Wrong username or password."));
        assert_eq!(
            wrong_body.replace("root", "nobody"), unknown_body,
            "an unknown user gets the same answer as a wrong password"
        );
        let ok = login(&server, &browser, "root", ADMIN_PASSWORD).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        assert_eq!(ok.headers()["location"], "/api/v1/users");
        let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.starts_with("stackgate_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        let home = browser.get(server.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("Hello, First Admin"));
        assert_eq!(browser.get(server.url("/api/v1/users")).send().await.unwrap().status(), StatusCode::OK);
        let csrf = hidden_field(&home, "csrf");
        let out = browser.post(server.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(out.status(), StatusCode::OK);
        assert!(out.text().await.unwrap().contains("You are signed out"));
        assert_eq!(browser.get(server.url("/api/v1/users")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    };

    forms_refuse_requests_without_their_csrf_token => |server: TestServer| async move {
        server.bootstrap_admin().await;
        let browser = server.browser();
        browser.get(server.url("/login")).send().await.unwrap();
        let forged = browser.post(server.url("/login"))
            .form(&[("csrf", "forged"), ("username", "root"), ("password", ADMIN_PASSWORD)])
            .send().await.unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let fresh = server.browser();
        let no_cookie = fresh.post(server.url("/login"))
            .form(&[("csrf", "x".repeat(43).as_str()), ("username", "root"), ("password", ADMIN_PASSWORD)])
            .send().await.unwrap();
        assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
        // The right token from another site is refused too.
        let html = browser.get(server.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = hidden_field(&html, "csrf");
        let cross = browser.post(server.url("/login")).header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str()), ("username", "root"), ("password", ADMIN_PASSWORD)])
            .send().await.unwrap();
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    };

    setup_form_explains_bad_input_and_keeps_the_link => |server: TestServer| async move {
        let link = server.setup_link.clone().unwrap();
        let token = link.split("token=").nth(1).unwrap().to_owned();
        let browser = server.browser();
        let html = browser.get(&link).send().await.unwrap().text().await.unwrap();
        let csrf = hidden_field(&html, "csrf");
        let submit = |username: &'static str, password: &'static str, confirm: &'static str| {
            browser.post(server.url("/setup")).form(&[
                ("token", token.as_str()), ("csrf", csrf.as_str()), ("username", username),
                ("email", ""), ("display_name", ""), ("password", password), ("password_confirm", confirm),
            ]).send()
        };
        let bad_name = submit("ana<script>", ADMIN_PASSWORD, ADMIN_PASSWORD).await.unwrap();
        assert_eq!(bad_name.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = bad_name.text().await.unwrap();
        assert!(body.contains("username: may contain only"), "{body}");
        assert!(!body.contains("<script>") && body.contains("ana&lt;script&gt;"), "input is kept, escaped");
        let mismatch = submit("ana", ADMIN_PASSWORD, "something else entirely").await.unwrap();
        assert!(mismatch.text().await.unwrap().contains("not the same"));
        let weak = submit("ana", "short", "short").await.unwrap();
        assert!(weak.text().await.unwrap().contains("at least 12 characters"));
        assert_eq!(server.store.count_users().await.unwrap(), 0, "nothing written");
        let ok = submit("ana", ADMIN_PASSWORD, ADMIN_PASSWORD).await.unwrap();
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let replay = submit("eve", ADMIN_PASSWORD, ADMIN_PASSWORD).await.unwrap();
        assert_eq!(replay.status(), StatusCode::GONE);
        assert_eq!(server.store.count_users().await.unwrap(), 1);
    };

    pages_carry_security_headers => |server: TestServer| async move {
        for path in ["/login", "/nowhere", "/api/v1/users", "/healthz"] {
            let response = reqwest::get(server.url(path)).await.unwrap();
            let headers = response.headers();
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["referrer-policy"], "same-origin");
            assert_eq!(headers["x-frame-options"], "DENY");
            assert!(headers.get("strict-transport-security").is_none(), "plain HTTP gets no HSTS: {path}");
        }
        let missing = reqwest::get(server.url("/nowhere")).await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.text().await.unwrap().contains("Page not found"));
        let api_missing = reqwest::get(server.url("/api/v1/nowhere")).await.unwrap();
        assert_eq!(api_missing.headers()["content-type"], "application/problem+json");
        let _ = json!(null);
    };
}

/// The organisation's logo and colour on every page, from config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_the_organisations_logo_and_colour() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(
        &logo,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><circle cx="16" cy="16" r="14" fill="#fff"/></svg>"##,
    )
    .unwrap();
    let logo = logo.display().to_string();
    let server = TestServer::start_with(
        stackgate_testkit::Backend::Sqlite,
        &[
            ("STACKGATE_BRAND_COLOUR", "#AA3300"),
            ("STACKGATE_ORGANISATION_LOGO", logo.as_str()),
            ("STACKGATE_ORGANISATION_NAME", "Free Press"),
        ],
    )
    .await
    .unwrap();
    let page = reqwest::get(server.url("/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"href="/assets/brand.css""#), "{page}");
    assert!(page.contains(r#"src="/assets/logo""#), "{page}");
    assert!(page.contains("Free Press"));
    let css = reqwest::get(server.url("/assets/brand.css"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        css.contains("--accent: #aa3300") && css.contains("--accent-dark: #882800"),
        "{css}"
    );
    let served = reqwest::get(server.url("/assets/logo")).await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/svg+xml");
    assert!(
        served.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert!(served.text().await.unwrap().contains("<circle"));

    // Without them, nothing is linked and the routes say so.
    let plain = TestServer::start(stackgate_testkit::Backend::Sqlite)
        .await
        .unwrap();
    let page = reqwest::get(plain.url("/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("brand.css") && !page.contains("/assets/logo"));
    assert_eq!(
        reqwest::get(plain.url("/assets/logo"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// What the methods step offers: (a password field, a passkey button).
fn offered(page: &str) -> (bool, bool) {
    (
        page.contains("type=\"password\""),
        page.contains("id=\"passkey-signin\""),
    )
}

/// A page without its per-request CSRF token, to compare two answers.
fn without_csrf(page: &str) -> String {
    page.replace(&hidden_field(page, "csrf"), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_asks_for_the_username_first_and_reveals_no_accounts() {
    for backend in [
        stackgate_testkit::Backend::Sqlite,
        stackgate_testkit::Backend::Postgres,
    ] {
        // WebAuthn (passkeys) needs a host name.
        let Some(server) =
            TestServer::start_with(backend, &[("STACKGATE_ISSUER", "http://localhost:{port}")])
                .await
        else {
            continue;
        };
        server.bootstrap_admin().await;
        let browser = server.browser();
        let first = browser
            .get(server.url("/login?return_to=/account/security"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The username, with passkey autofill on it, and a passkey button; no password yet.
        assert!(first.contains("action=\"/login/identify\""), "{first}");
        assert!(first.contains("autocomplete=\"username webauthn\""));
        assert!(first.contains("data-autofill"));
        assert!(!first.contains("type=\"password\""));
        let csrf = hidden_field(&first, "csrf");
        let identify = |username: &str| {
            browser
                .post(server.url("/login/identify"))
                .header("origin", server.base_url.as_str())
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", username),
                    ("return_to", "/account/security"),
                ])
                .send()
        };

        // root has a password and no passkey: the password it is.
        let step = identify(" Root ").await.unwrap();
        assert_eq!(step.status(), StatusCode::OK);
        let page = step.text().await.unwrap();
        assert!(
            page.contains("<strong id=\"signing-in-as\">Root</strong>"),
            "{page}"
        );
        assert!(
            page.contains("href=\"/login?return_to=%2Faccount%2Fsecurity\""),
            "Not you?"
        );
        assert_eq!(offered(&page), (true, false));
        assert!(
            !page.contains("data-autofill"),
            "autofill belongs to the username step"
        );
        // An app's login_hint skips the first step.
        let hinted = browser
            .get(server.url("/login?login_hint=root"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(offered(&hinted), (true, false));
        assert!(hinted.contains("id=\"signing-in-as\">root<"));

        // A name that is no account gets a decoy: the same every time it is asked for, and
        // drawn from the same kinds of answer as real accounts, so its answer does not say
        // whether it exists.
        let mut kinds = Vec::new();
        for i in 0..40 {
            let name = format!("ghost{i}");
            let once = identify(&name).await.unwrap();
            assert_eq!(once.status(), StatusCode::OK);
            let once = once.text().await.unwrap();
            let again = identify(&name.to_uppercase())
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(
                without_csrf(&once),
                without_csrf(&again).replace(&name.to_uppercase(), &name),
                "a name always draws the same methods"
            );
            assert_ne!(offered(&once), (false, false));
            if !kinds.contains(&offered(&once)) {
                kinds.push(offered(&once));
            }
        }
        assert!(
            kinds.contains(&(true, false)) && kinds.contains(&(true, true)),
            "decoys look like accounts with and without passkeys: {kinds:?}"
        );

        // No name: asked again. A form from another site: refused.
        let empty = identify("  ").await.unwrap();
        assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(empty.text().await.unwrap().contains("Enter your username."));
        let forged = browser
            .post(server.url("/login/identify"))
            .form(&[("csrf", "forged"), ("username", "root")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
}
