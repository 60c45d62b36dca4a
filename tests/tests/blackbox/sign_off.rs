//! Single sign-off: one sign-out ends the session in every app (back-channel logout tokens,
//! validated by a relying-party fixture), revokes every token of the session, and never waits
//! on an app that is down.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stackgate_identity::{Clock, SystemClock};
use stackgate_oidc::{LogoutTokenClaims, SigningAlg, sign};
use stackgate_testkit::{
    ADMIN_PASSWORD, AdminClient, RelyingParties, TestServer, hidden_field, on_both_backends,
    sign_in_and_authorize,
};
use std::time::{Duration, Instant};

pub(crate) struct App {
    id: String,
    secret: String,
    redirect: String,
}

pub(crate) async fn register(
    server: &TestServer,
    admin: &AdminClient,
    id: &str,
    extra: Value,
) -> App {
    let redirect = format!("https://{id}.example.org/callback");
    let mut body = json!({ "id": id, "name": id, "redirect_uris": [redirect], "first_party": true,
                           "post_logout_redirect_uris": [format!("https://{id}.example.org/bye")] });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let created: Value = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(&admin.token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    App {
        id: id.into(),
        secret: created["client_secret"].as_str().unwrap().into(),
        redirect,
    }
}

/// Signs in to `app` in `browser` (once per browser; later apps get single sign-on) and
/// returns its tokens.
pub(crate) async fn tokens(
    server: &TestServer,
    browser: &reqwest::Client,
    app: &App,
    user: &str,
    password: &str,
) -> Value {
    let verifier = URL_SAFE_NO_PAD.encode(stackgate_identity::random_bytes::<32>().unwrap());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        server.base_url, app.id, app.redirect
    );
    let back = sign_in_and_authorize(server, browser, &url, user, password).await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &app.redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn refresh_error(server: &TestServer, app: &App, tokens: &Value) -> String {
    let body = refresh(server, app, tokens).await;
    body["error"].as_str().unwrap_or("none").to_owned()
}

/// The token endpoint's answer to a refresh with `tokens`' refresh token.
pub(crate) async fn refresh(server: &TestServer, app: &App, tokens: &Value) -> Value {
    reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(&app.id, Some(&app.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn userinfo(server: &TestServer, tokens: &Value) -> StatusCode {
    reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
}

pub(crate) async fn sign_out_page(
    server: &TestServer,
    browser: &reqwest::Client,
) -> reqwest::Response {
    let home = browser
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser
        .post(server.url("/logout"))
        .header("origin", server.base_url.as_str())
        .form(&[("csrf", hidden_field(&home, "csrf"))])
        .send()
        .await
        .unwrap()
}

async fn deliveries(server: &TestServer, admin: &AdminClient) -> Vec<Value> {
    let list: Value = reqwest::Client::new()
        .get(server.url("/api/v1/logout-deliveries"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array().unwrap().clone()
}

/// Signs `browser` in to a fixture app the way a person does: the app's login link, Stackgate's
/// pages, back to the app's callback, which starts the app's own session.
async fn sign_in_to_app(
    server: &TestServer,
    rps: &RelyingParties,
    browser: &reqwest::Client,
    app: &str,
) {
    let start = browser.get(rps.login_url(app)).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let callback = sign_in_and_authorize(server, browser, &authorize, "root", ADMIN_PASSWORD).await;
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}",
        done.text().await.unwrap()
    );
    let me = browser.get(rps.me_url(app)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "{app} keeps its own session");
}

on_both_backends! {
    a_person_signs_out_everywhere_from_one_device => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rps = RelyingParties::start(&server.base_url).await;
        let extra = json!({ "redirect_uris": [rps.redirect_uri("notes")], "backchannel_logout_uri": rps.uri("notes") });
        let app = register(&server, &admin, "notes", extra).await;
        rps.enable_sign_in("notes", &app.secret).await;
        // A laptop and a phone, each signed in to Stackgate and to the app.
        let laptop = server.browser();
        let phone = server.browser();
        sign_in_to_app(&server, &rps, &laptop, "notes").await;
        sign_in_to_app(&server, &rps, &phone, "notes").await;
        assert_eq!(rps.sessions("notes").len(), 2);
        // From the phone: sign out everywhere.
        let home = phone.get(server.url("/")).send().await.unwrap().text().await.unwrap();
        let done = phone
            .post(server.url("/logout/everywhere"))
            .header("origin", server.base_url.as_str())
            .form(&[("csrf", hidden_field(&home, "csrf"))])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !rps.sessions("notes").is_empty() {
            assert!(Instant::now() < deadline, "the app still holds {:?}", rps.sessions("notes"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let laptop_home = laptop.get(server.url("/")).send().await.unwrap();
        assert_eq!(laptop_home.headers()["location"], "/login", "the laptop is signed out too");
        assert!(rps.rejected().is_empty(), "{:?}", rps.rejected());
        // Without the form token, nothing happens.
        let again = server.browser();
        sign_in_to_app(&server, &rps, &again, "notes").await;
        let forged = again.post(server.url("/logout/everywhere")).header("origin", server.base_url.as_str()).form(&[("csrf", "x")]).send().await.unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert_eq!(rps.sessions("notes").len(), 1);
    };

    three_apps_with_their_own_sessions_all_end_with_one_sign_out => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rps = RelyingParties::start(&server.base_url).await;
        // Two apps hear of sign-outs on the back channel, one in the browser (front channel).
        for (name, channel) in [("notes", "back"), ("chat", "back"), ("board", "front")] {
            let mut extra = json!({ "redirect_uris": [rps.redirect_uri(name)] });
            if channel == "back" {
                extra["backchannel_logout_uri"] = json!(rps.uri(name));
            } else {
                extra["frontchannel_logout_uri"] = json!(rps.front_channel_uri(name));
            }
            let app = register(&server, &admin, name, extra).await;
            rps.enable_sign_in(name, &app.secret).await;
        }
        let browser = server.browser();
        for name in ["notes", "chat", "board"] {
            sign_in_to_app(&server, &rps, &browser, name).await;
        }
        let held: Vec<_> = ["notes", "chat", "board"].iter().map(|n| rps.sessions(n)).collect();
        assert!(held.iter().all(|s| s.len() == 1));
        assert!(held.windows(2).all(|w| w[0][0].sid == w[1][0].sid), "one SSO session, one sid");

        let page = sign_out_page(&server, &browser).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = stackgate_testkit::decode_entities(&page.text().await.unwrap());
        // What the browser does with the signed-out page's iframes.
        let frames: Vec<&str> = html.split("<iframe").skip(1).filter_map(|f| f.split("src=\"").nth(1)?.split('"').next()).collect();
        assert_eq!(frames.len(), 1, "{html}");
        assert_eq!(browser.get(frames[0]).send().await.unwrap().status(), StatusCode::OK);
        assert!(rps.wait_for(&["notes", "chat"], Duration::from_secs(2)).await, "rejected: {:?}", rps.rejected());

        for (name, sessions) in ["notes", "chat", "board"].iter().zip(&held) {
            let me = browser.get(rps.me_url(name)).send().await.unwrap();
            assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "{name}'s own session ended");
            assert_eq!(rps.refresh(name, sessions).await, 0, "{name}'s refresh token is refused");
        }
        assert!(rps.rejected().is_empty(), "{:?}", rps.rejected());
    };

    one_sign_out_ends_the_session_in_every_app => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let admin = server.bootstrap_admin().await;
        let mut apps = Vec::new();
        // Logout tokens use each app's ID token algorithm.
        for (name, alg) in [("chat", "ES256"), ("files", "EdDSA"), ("board", "RS256")] {
            let extra = json!({ "backchannel_logout_uri": receiver.uri(name), "id_token_alg": alg,
                                "frontchannel_logout_uri": format!("https://{name}.example.org/frontchannel") });
            apps.push(register(&server, &admin, name, extra).await);
        }
        let browser = server.browser();
        let mut held = Vec::new();
        for app in &apps {
            held.push(tokens(&server, &browser, app, "root", ADMIN_PASSWORD).await);
        }
        for t in &held {
            assert_eq!(userinfo(&server, t).await, StatusCode::OK);
        }
        let started = Instant::now();
        let page = sign_out_page(&server, &browser).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        for origin in ["https://chat.example.org", "https://files.example.org", "https://board.example.org"] {
            assert!(csp.contains(origin), "frames from each app's origin only: {csp}");
        }
        assert!(!csp.contains("frame-src *"), "{csp}");
        let html = stackgate_testkit::decode_entities(&page.text().await.unwrap());
        assert!(html.contains("You are signed out"));
        assert!(html.contains("https://chat.example.org/frontchannel?iss="), "front-channel iframes with iss and sid");
        assert!(receiver.wait_for(&["chat", "files", "board"], Duration::from_secs(1)).await, "rejected: {:?}", receiver.rejected());
        let fan_out = started.elapsed();
        assert!(fan_out < Duration::from_secs(1), "sign-out to last logout token: {fan_out:?}");
        let sids: Vec<String> = ["chat", "files", "board"].iter().map(|a| receiver.accepted(a)[0].clone()).collect();
        assert!(sids.windows(2).all(|w| w[0] == w[1]), "one session, one sid: {sids:?}");
        assert!(receiver.rejected().is_empty());
        for (app, t) in apps.iter().zip(&held) {
            assert_eq!(refresh_error(&server, app, t).await, "invalid_grant", "{}'s refresh token", app.id);
            assert_eq!(userinfo(&server, t).await, StatusCode::UNAUTHORIZED, "{}'s access token", app.id);
        }
        let records = deliveries(&server, &admin).await;
        assert_eq!(records.iter().filter(|d| d["status"] == "delivered").count(), 3, "{records:?}");
        assert_eq!(browser.get(server.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "the browser is signed out too");
    };

    fan_out_to_a_hundred_apps => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let admin = server.bootstrap_admin().await;
        let names: Vec<String> = (0..100).map(|i| format!("app{i:03}")).collect();
        let browser = server.browser();
        for name in &names {
            let app = register(&server, &admin, name, json!({ "backchannel_logout_uri": receiver.uri(name) })).await;
            tokens(&server, &browser, &app, "root", ADMIN_PASSWORD).await;
        }
        let started = Instant::now();
        assert_eq!(sign_out_page(&server, &browser).await.status(), StatusCode::OK);
        let answered = started.elapsed();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(receiver.wait_for(&all, Duration::from_secs(5)).await, "rejected: {:?}", receiver.rejected());
        let last = started.elapsed();
        eprintln!("fan-out to 100 apps ({:?}): sign-out answered in {answered:?}, last valid logout token received after {last:?}", server.backend);
        // The target is 1 s (measured ~0.25 s); the bound leaves room for a loaded CI machine.
        assert!(last < Duration::from_secs(2), "sign-out to the last of 100 logout tokens took {last:?}");
        assert!(receiver.rejected().is_empty());
    };

    the_fixture_refuses_bad_logout_tokens => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let keys = server.keyring.keys();
        let signer = keys.signer(SigningAlg::ES256).unwrap();
        let now = SystemClock.unix();
        let claims = |aud: &str, jti: &str| LogoutTokenClaims::new(&server.base_url, aud, "user", "sid-1", jti.to_owned(), now);
        let good = sign(signer, "logout+jwt", &claims("app", "j1")).unwrap();
        // Without one request to the server from this task first, the fixture's JWKS fetch is
        // refused (ECONNREFUSED) in this test, every time; the cause is not understood yet.
        assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), StatusCode::OK, "server up before offering");
        assert_eq!(receiver.offer("app", &good).await, StatusCode::OK, "{:?}", receiver.rejected());
        assert_eq!(receiver.offer("app", &good).await, StatusCode::BAD_REQUEST, "replayed jti");
        assert_eq!(receiver.offer("app", &sign(signer, "logout+jwt", &claims("other", "j2")).unwrap()).await, StatusCode::BAD_REQUEST, "wrong aud");
        assert_eq!(receiver.offer("app", &sign(signer, "JWT", &claims("app", "j3")).unwrap()).await, StatusCode::BAD_REQUEST, "an ID token is not a logout token");
        let mut with_nonce = serde_json::to_value(claims("app", "j4")).unwrap();
        with_nonce["nonce"] = json!("n");
        assert_eq!(receiver.offer("app", &sign(signer, "logout+jwt", &with_nonce).unwrap()).await, StatusCode::BAD_REQUEST, "nonce");
        let mut no_event = serde_json::to_value(claims("app", "j5")).unwrap();
        no_event["events"] = json!({});
        assert_eq!(receiver.offer("app", &sign(signer, "logout+jwt", &no_event).unwrap()).await, StatusCode::BAD_REQUEST, "no event");
        let stranger = stackgate_oidc::SigningKey::from_pkcs8(SigningAlg::ES256, &stackgate_oidc::KeyMaterial::generate(SigningAlg::ES256).unwrap().pkcs8).unwrap();
        assert_eq!(receiver.offer("app", &sign(&stranger, "logout+jwt", &claims("app", "j6")).unwrap()).await, StatusCode::BAD_REQUEST, "foreign key");
        assert_eq!(receiver.rejected().len(), 6);
        assert_eq!(receiver.accepted("app").len(), 1);
    };

    an_app_that_is_down_does_not_hold_up_sign_out => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let admin = server.bootstrap_admin().await;
        let up = register(&server, &admin, "up", json!({ "backchannel_logout_uri": receiver.uri("up") })).await;
        // Nothing listens on port 9: connections are refused.
        let down = register(&server, &admin, "down", json!({ "backchannel_logout_uri": "http://127.0.0.1:9/backchannel" })).await;
        let browser = server.browser();
        tokens(&server, &browser, &up, "root", ADMIN_PASSWORD).await;
        tokens(&server, &browser, &down, "root", ADMIN_PASSWORD).await;
        let started = Instant::now();
        assert_eq!(sign_out_page(&server, &browser).await.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(500), "sign-out waited {:?}", started.elapsed());
        assert!(receiver.wait_for(&["up"], Duration::from_secs(1)).await);
        // The failure is retried, then recorded for admins.
        let deadline = Instant::now() + Duration::from_secs(10);
        let failed = loop {
            let records = deliveries(&server, &admin).await;
            if let Some(record) = records.iter().find(|d| d["client_id"] == "down" && d["status"] == "failed") {
                break record.clone();
            }
            assert!(Instant::now() < deadline, "no failed delivery recorded: {records:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(failed["attempts"], 3);
        assert!(failed["last_error"].as_str().unwrap().contains("connect"), "{failed}");
    };

    rp_initiated_logout_checks_the_return_address_and_asks_when_unsure => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "notes", json!({})).await;
        let browser = server.browser();
        let held = tokens(&server, &browser, &app, "root", ADMIN_PASSWORD).await;
        let id_token = held["id_token"].as_str().unwrap();
        let signed_in = || async { browser.get(server.url("/")).send().await.unwrap().status() == StatusCode::OK };
        // An address the app did not register: an error page, and nobody is signed out.
        let evil = browser.get(server.url(&format!("/end_session?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/"))).send().await.unwrap();
        assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
        assert!(evil.headers().get("location").is_none());
        assert!(signed_in().await);
        // No hint: a link from anywhere only gets a question.
        let asked = browser.get(server.url("/end_session?client_id=notes")).send().await.unwrap();
        assert_eq!(asked.status(), StatusCode::OK);
        assert!(asked.text().await.unwrap().contains("Sign out everywhere?"));
        assert!(signed_in().await);
        // With this session's ID token: signed out at once, and sent back with the state.
        let done = browser.get(server.url(&format!(
            "/end_session?id_token_hint={id_token}&post_logout_redirect_uri=https://notes.example.org/bye&state=xyz"
        ))).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        let html = stackgate_testkit::decode_entities(&done.text().await.unwrap());
        assert!(html.contains("url=https://notes.example.org/bye?state=xyz"), "{html}");
        assert!(!signed_in().await);
        assert_eq!(refresh_error(&server, &app, &held).await, "invalid_grant");
        let discovery: Value = reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
        assert_eq!(discovery["end_session_endpoint"], server.url("/end_session"));
        assert_eq!(discovery["backchannel_logout_supported"], true);
        assert_eq!(discovery["backchannel_logout_session_supported"], true);
    };

    signing_in_again_ends_the_previous_session => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "mail", json!({ "backchannel_logout_uri": receiver.uri("mail") })).await;
        let browser = server.browser();
        let first = tokens(&server, &browser, &app, "root", ADMIN_PASSWORD).await;
        // The app asks for a fresh sign-in: the old session must not live on beside the new one.
        let url = format!("{}/authorize?response_type=code&client_id=mail&redirect_uri={}&scope=openid&prompt=login&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            server.base_url, app.redirect);
        sign_in_and_authorize(&server, &browser, &url, "root", ADMIN_PASSWORD).await;
        assert_eq!(refresh_error(&server, &app, &first).await, "invalid_grant");
        assert!(receiver.wait_for(&["mail"], Duration::from_secs(1)).await, "the app hears of the ended session");
    };

    a_code_from_an_ended_sign_in_is_refused => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "late", json!({})).await;
        let browser = server.browser();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let url = format!("{}/authorize?response_type=code&client_id=late&redirect_uri={}&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            server.base_url, app.redirect);
        let back = sign_in_and_authorize(&server, &browser, &url, "root", ADMIN_PASSWORD).await;
        let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        sign_out_page(&server, &browser).await;
        let body: Value = reqwest::Client::new().post(server.url("/token")).basic_auth(&app.id, Some(&app.secret))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &app.redirect), ("code_verifier", verifier)])
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    };

    keys_rotated_by_another_replica_are_picked_up_at_once => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "notes", json!({})).await;
        let browser = server.browser();
        let held = tokens(&server, &browser, &app, "root", ADMIN_PASSWORD).await;
        // Another replica (its own keyring on the same database) rotates the keys ...
        let master = stackgate::server::master_key(&server.config).unwrap();
        let replica = stackgate_web::oidc::keyring::Keyring::open(server.store.clone(), master).await.unwrap();
        replica.rotate().await.unwrap();
        // ... and signs with the new key: this server must verify it without waiting a minute.
        let payload = held["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let hint = sign(replica.keys().signer(SigningAlg::ES256).unwrap(), "JWT", &claims).unwrap();
        let done = browser.get(server.url(&format!("/end_session?id_token_hint={hint}"))).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().await.unwrap().contains("You are signed out"), "the hint verified and matched the session");
    };

    the_confirmation_keeps_the_return_address_of_the_hinted_app => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "notes", json!({})).await;
        let browser = server.browser();
        let old = tokens(&server, &browser, &app, "root", ADMIN_PASSWORD).await;
        // A new sign-in: the old ID token no longer names this browser's session.
        tokens(&server, &server.browser(), &app, "root", ADMIN_PASSWORD).await;
        let url = format!("{}/authorize?response_type=code&client_id=notes&redirect_uri={}&scope=openid&prompt=login&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            server.base_url, app.redirect);
        sign_in_and_authorize(&server, &browser, &url, "root", ADMIN_PASSWORD).await;
        let asked = browser.get(server.url(&format!(
            "/end_session?id_token_hint={}&post_logout_redirect_uri=https://notes.example.org/bye&state=s1",
            old["id_token"].as_str().unwrap()
        ))).send().await.unwrap();
        let html = asked.text().await.unwrap();
        assert!(html.contains("Sign out everywhere?"));
        let done = browser.post(server.url("/end_session/confirm")).header("origin", server.base_url.as_str())
            .form(&[("csrf", hidden_field(&html, "csrf")), ("request", stackgate_testkit::decode_entities(&hidden_field(&html, "request")))])
            .send().await.unwrap();
        let page = stackgate_testkit::decode_entities(&done.text().await.unwrap());
        assert!(page.contains("url=https://notes.example.org/bye?state=s1"), "{page}");
    };

    a_cross_site_post_cannot_fake_a_sign_out => |server: TestServer| async move {
        server.bootstrap_admin().await;
        // A cross-site form POST arrives without the Lax session cookie: it is sent on as a GET.
        let no_cookie = server.browser();
        let posted = no_cookie.post(server.url("/end_session")).form(&[("client_id", "x")]).send().await.unwrap();
        assert_eq!(posted.status(), StatusCode::SEE_OTHER);
        assert_eq!(posted.headers()["location"], "/end_session?client_id=x");
    };

    admins_sign_users_out_and_disabling_signs_out => |server: TestServer| async move {
        let receiver = RelyingParties::start(&server.base_url).await;
        let admin = server.bootstrap_admin().await;
        let app = register(&server, &admin, "wiki", json!({ "backchannel_logout_uri": receiver.uri("wiki") })).await;
        let api = reqwest::Client::new();
        api.post(server.url("/api/v1/users")).bearer_auth(&admin.token)
            .json(&json!({ "username": "bea", "password": "bea's long passphrase" })).send().await.unwrap();
        let laptop = server.browser();
        let phone = server.browser();
        let a = tokens(&server, &laptop, &app, "bea", "bea's long passphrase").await;
        let b = tokens(&server, &phone, &app, "bea", "bea's long passphrase").await;
        let out: Value = api.post(server.url("/api/v1/users/bea/sign-out")).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
        assert_eq!(out["sessions_ended"], 2, "{out}");
        assert!(receiver.wait_for(&["wiki"], Duration::from_secs(1)).await);
        for t in [&a, &b] {
            assert_eq!(refresh_error(&server, &app, t).await, "invalid_grant");
        }
        // Disabling signs out too.
        let c = tokens(&server, &server.browser(), &app, "bea", "bea's long passphrase").await;
        let disabled = api.patch(server.url("/api/v1/users/bea")).bearer_auth(&admin.token).json(&json!({ "disabled": true })).send().await.unwrap();
        assert_eq!(disabled.status(), StatusCode::OK);
        let deadline = Instant::now() + Duration::from_secs(1);
        while receiver.accepted("wiki").len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(receiver.accepted("wiki").len(), 3, "two sessions, then one more");
        assert_eq!(userinfo(&server, &c).await, StatusCode::UNAUTHORIZED);
        let audit: Value = api.get(server.url("/api/v1/audit?action=user.sign_out")).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
        assert_eq!(audit["items"].as_array().unwrap().len(), 2);
    };
}
