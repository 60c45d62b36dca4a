//! The edge proxy end to end: a real upstream behind it, people signing in through the login
//! host, Cedar deciding, identity headers the client cannot spoof, an assertion the upstream can
//! verify against the JWKS, WebSockets, routes changing at runtime, and sign-off taking effect on
//! the next request.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use stackgate_testkit::{AdminClient, EchoUpstream, TestServer, sign_in_and_authorize};

pub(crate) const PASSWORD: &str = "a long enough password 1";

pub(crate) async fn api(
    server: &TestServer,
    admin: &AdminClient,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Client::new()
        .request(method, server.url(&format!("/api/v1{path}")))
        .bearer_auth(&admin.token);
    if let Some(body) = body {
        stackgate_testkit::used_secrets_in(&body);
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    stackgate_testkit::used_secrets_in(&value);
    (status, value)
}

pub(crate) async fn add_route(server: &TestServer, admin: &AdminClient, route: Value) -> Value {
    let (status, body) = api(
        server,
        admin,
        reqwest::Method::POST,
        "/proxy/routes",
        Some(route),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub(crate) async fn user(server: &TestServer, admin: &AdminClient, name: &str, groups: &[&str]) {
    for group in groups {
        let (status, _) = api(
            server,
            admin,
            reqwest::Method::POST,
            "/groups",
            Some(json!({ "name": group })),
        )
        .await;
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT);
    }
    let (status, body) = api(
        server,
        admin,
        reqwest::Method::POST,
        "/users",
        Some(json!({ "username": name, "email": format!("{name}@example.org"), "password": PASSWORD, "groups": groups })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Opens `url` on an app host as a person would: sent to sign in, signs in, handed back to the
/// app's host, and lands on the page asked for. Returns that last response.
pub(crate) async fn open_signed_in(
    server: &TestServer,
    browser: &Client,
    url: &str,
    username: &str,
) -> reqwest::Response {
    let first = browser.get(url).send().await.unwrap();
    assert_eq!(
        first.status(),
        StatusCode::FOUND,
        "a person without a session is sent to sign in"
    );
    let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        sign_in.starts_with(&server.url("/proxy/sign-in?rd=")),
        "{sign_in}"
    );
    let callback = sign_in_and_authorize(server, browser, &sign_in, username, PASSWORD).await;
    assert_eq!(callback.path(), "/.stackgate/callback", "{callback}");
    let back = browser.get(callback.clone()).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let cookie = back.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("stackgate_proxy="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let target = back.headers()["location"].to_str().unwrap().to_owned();
    let again = callback.join(&target).unwrap();
    // The code is spent.
    let replay = browser.get(callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    browser.get(again).send().await.unwrap()
}

async fn echoed(response: reqwest::Response) -> Value {
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        response.headers()
    );
    response.json().await.unwrap()
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    signs_in_through_the_login_host_and_tells_the_app_who_calls => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({
            "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki",
            "groups": ["staff"], "public_paths": ["/health"],
        })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        let browser = server.edge_browser(&["wiki.localhost"]);

        // Public paths need no session, and carry no identity even if the client claims one.
        let public = browser
            .get(server.app_url("wiki.localhost", "/health"))
            .header("X-Forwarded-User", "root")
            .send().await.unwrap();
        let public = echoed(public).await;
        assert!(public["headers"].get("x-forwarded-user").is_none(), "{public}");

        let page = open_signed_in(&server, &browser, &server.app_url("wiki.localhost", "/page?x=1"), "ana").await;
        let seen = echoed(page).await;
        assert_eq!(seen["path"], "/page?x=1");
        assert_eq!(seen["headers"]["x-forwarded-user"], "ana");
        assert_eq!(seen["headers"]["x-forwarded-email"], "ana@example.org");
        assert_eq!(seen["headers"]["x-forwarded-groups"], "staff");
        assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
        assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
        assert!(seen["headers"]["host"].as_str().unwrap().starts_with("wiki.localhost:"));
        assert!(seen["headers"].get("cookie").is_none(), "the edge's cookie never reaches the app: {seen}");

        // Spoofed identity headers are replaced, whatever their case or count; the app's own
        // cookies pass, the edge's does not.
        let edge_cookie = proxy_cookie(&server, "wiki.localhost", "ana").await;
        let spoofed = server.edge_browser(&["wiki.localhost"])
            .get(server.app_url("wiki.localhost", "/x"))
            .header("x-forwarded-user", "root")
            .header("X-Forwarded-Groups", "admins")
            .header("X-Stackgate-Assertion", "forged")
            .header("Cookie", format!("theirs=1; {edge_cookie}"))
            .send().await.unwrap();
        let spoofed = echoed(spoofed).await;
        assert_eq!(spoofed["headers"]["x-forwarded-user"], "ana", "{spoofed}");
        assert_eq!(spoofed["headers"]["x-forwarded-groups"], "staff");
        assert_ne!(spoofed["headers"]["x-stackgate-assertion"], "forged");
        assert_eq!(spoofed["headers"]["cookie"], "theirs=1", "the app's own cookies pass");

        // The assertion verifies against the JWKS, for this app only, briefly.
        let assertion = spoofed["headers"]["x-stackgate-assertion"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(assertion).unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = Client::new().get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&["wiki"]);
        validation.set_issuer(&[server.base_url.as_str()]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["preferred_username"], "ana");
        assert_eq!(claims["groups"], json!(["staff"]));
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 60);
        let mut other_app = jsonwebtoken::Validation::new(header.alg);
        other_app.set_audience(&["board"]);
        assert!(jsonwebtoken::decode::<Value>(assertion, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &other_app).is_err());

        // A form post without a session is refused, not redirected.
        let stranger = server.edge_browser(&["wiki.localhost"]);
        let post = stranger.post(server.app_url("wiki.localhost", "/save")).body("x").send().await.unwrap();
        assert_eq!(post.status(), StatusCode::UNAUTHORIZED);

        // A cookie for one app's host does not open another's, though the same person may use both.
        add_route(&server, &admin, json!({ "host": "board.localhost", "upstream": upstream.url(), "app": "board", "groups": ["staff"] })).await;
        let works = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
            .resolve("wiki.localhost", server.proxy_addr.unwrap()).resolve("board.localhost", server.proxy_addr.unwrap())
            .build().unwrap();
        let on_wiki = works.get(server.app_url("wiki.localhost", "/")).header("cookie", &edge_cookie).send().await.unwrap();
        assert_eq!(on_wiki.status(), StatusCode::OK);
        let on_board = works.get(server.app_url("board.localhost", "/")).header("cookie", &edge_cookie).send().await.unwrap();
        assert_eq!(on_board.status(), StatusCode::FOUND, "a wiki cookie is not a board session");

        // The app cannot set or clear the edge's cookies, and cannot learn them.
        let tricky = works.get(server.app_url("wiki.localhost", "/set-cookie")).header("cookie", &edge_cookie).send().await.unwrap();
        let set: Vec<&str> = tricky.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(set, ["app=1; Path=/"], "the app's own cookie passes, its try at the edge's does not");
        server.stop().await;
    };

    cedar_decides_by_group_method_and_path => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"] })).await;
        add_route(&server, &admin, json!({ "host": "board.localhost", "upstream": upstream.url(), "app": "board", "groups": ["board"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        user(&server, &admin, "bo", &["board"]).await;
        user(&server, &admin, "ivo", &["interns"]).await;
        let hosts = ["wiki.localhost", "board.localhost"];

        let ana = server.edge_browser(&hosts);
        let page = open_signed_in(&server, &ana, &server.app_url("wiki.localhost", "/"), "ana").await;
        assert_eq!(page.status(), StatusCode::OK);
        let post = ana.post(server.app_url("wiki.localhost", "/edit")).body("text").send().await.unwrap();
        assert_eq!(echoed(post).await["method"], "POST");
        // Not her group's app: a page that says whom to ask.
        let board = open_signed_in(&server, &ana, &server.app_url("board.localhost", "/"), "ana").await;
        assert_eq!(board.status(), StatusCode::FORBIDDEN);
        let text = board.text().await.unwrap();
        assert!(text.contains("Ask your administrator") && text.contains("board"), "{text}");

        // Interns may read the wiki but not change it, and nobody outside finance reaches
        // /finance, whatever else permits it.
        let policy = r#"
permit (principal in Group::"interns", action in Action::"read", resource == App::"wiki");
forbid (principal, action, resource == App::"wiki")
  when { context.path like "/finance*" }
  unless { principal in Group::"finance" };
"#;
        let (status, body) = api(&server, &admin, reqwest::Method::PUT, "/access-policy", Some(json!({ "text": policy }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ivo = server.edge_browser(&hosts);
        let read = open_signed_in(&server, &ivo, &server.app_url("wiki.localhost", "/page"), "ivo").await;
        assert_eq!(read.status(), StatusCode::OK);
        let write = ivo.post(server.app_url("wiki.localhost", "/page")).body("x").send().await.unwrap();
        assert_eq!(write.status(), StatusCode::FORBIDDEN);
        let delete = ivo.delete(server.app_url("wiki.localhost", "/page")).send().await.unwrap();
        assert_eq!(delete.status(), StatusCode::FORBIDDEN);
        let finance = ana.get(server.app_url("wiki.localhost", "/finance/2026")).send().await.unwrap();
        assert_eq!(finance.status(), StatusCode::FORBIDDEN);
        let elsewhere = ana.get(server.app_url("wiki.localhost", "/news")).send().await.unwrap();
        assert_eq!(elsewhere.status(), StatusCode::OK);

        // A policy that does not validate is refused with its place, and the old one stays.
        let bad = "permit (principal in Group::\"interns\", action, resource == App::\"wiki\")\n  when { context.pth == \"/\" };";
        let (status, body) = api(&server, &admin, reqwest::Method::PUT, "/access-policy", Some(json!({ "text": bad }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem = &body["problems"][0];
        assert_eq!(problem["source"], "custom");
        assert_eq!(problem["line"], 2, "{body}");
        assert!(problem["column"].as_u64().unwrap() > 1, "{body}");
        assert!(problem["message"].as_str().unwrap().contains("pth"), "{body}");
        let syntax = "permit (principal, action, resource) when { ";
        let (status, body) = api(&server, &admin, reqwest::Method::PUT, "/access-policy", Some(json!({ "text": syntax }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["problems"][0]["line"], 1, "{body}");
        let (_, current) = api(&server, &admin, reqwest::Method::GET, "/access-policy", None).await;
        assert_eq!(current["text"], policy);
        assert!(current["generated"].as_str().unwrap().contains("App::\"board\""));
        let still = ivo.get(server.app_url("wiki.localhost", "/page")).send().await.unwrap();
        assert_eq!(still.status(), StatusCode::OK);

        // Moving ana to the board group takes effect on her next request.
        let (status, _) = api(&server, &admin, reqwest::Method::PUT, "/groups/board/members/ana", None).await;
        assert!(status.is_success(), "{status}");
        let board = ana.get(server.app_url("board.localhost", "/")).send().await.unwrap();
        assert_eq!(board.status(), StatusCode::OK);

        // Every change is in the audit log.
        let (_, audit) = api(&server, &admin, reqwest::Method::GET, "/audit?limit=100", None).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"access_policy.update") && actions.contains(&"proxy.route.create"), "{actions:?}");
        server.stop().await;
    };

    signing_out_is_refused_on_the_next_request_and_routes_change_at_runtime => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        let browser = server.edge_browser(&["wiki.localhost", "new.localhost"]);
        let unknown = browser.get(server.app_url("new.localhost", "/")).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert!(unknown.text().await.unwrap().contains("No app here"));

        let route = add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        let page = open_signed_in(&server, &browser, &server.app_url("wiki.localhost", "/"), "ana").await;
        assert_eq!(page.status(), StatusCode::OK);

        // A route for the same host twice is a conflict; a bad upstream is named.
        let (status, _) = api(&server, &admin, reqwest::Method::POST, "/proxy/routes",
            Some(json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "x" }))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = api(&server, &admin, reqwest::Method::POST, "/proxy/routes",
            Some(json!({ "host": "x.localhost", "upstream": "ftp://nope", "app": "x" }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["detail"].as_str().unwrap().contains("http://"), "{body}");

        // Signing out at the login host ends the app session on the very next request.
        let signed_out = browser
            .post(server.url("/logout/everywhere"))
            .header("origin", server.base_url.as_str())
            .form(&[("csrf", stackgate_testkit::hidden_field(&browser.get(server.url("/")).send().await.unwrap().text().await.unwrap(), "csrf").as_str())])
            .send().await.unwrap();
        assert_eq!(signed_out.status(), StatusCode::OK);
        let after = browser.get(server.app_url("wiki.localhost", "/")).send().await.unwrap();
        assert_eq!(after.status(), StatusCode::FOUND, "signed out means signed out, at once");

        // Removing the route unpublishes the app at once.
        let id = route["id"].as_str().unwrap();
        let (status, _) = api(&server, &admin, reqwest::Method::DELETE, &format!("/proxy/routes/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let gone = browser.get(server.app_url("wiki.localhost", "/")).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        server.stop().await;
    };

    a_sign_in_link_works_only_in_the_browser_that_asked => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"] })).await;
        user(&server, &admin, "mallory", &["staff"]).await;
        // Mallory starts a sign-in and keeps the hand-over link instead of following it.
        let mallory = server.edge_browser(&["wiki.localhost"]);
        let first = mallory.get(server.app_url("wiki.localhost", "/")).send().await.unwrap();
        let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
        let link = sign_in_and_authorize(&server, &mallory, &sign_in, "mallory", PASSWORD).await;
        // The victim opens it: no session as Mallory for them.
        let victim = server.edge_browser(&["wiki.localhost"]);
        let opened = victim.get(link.clone()).send().await.unwrap();
        assert_eq!(opened.status(), StatusCode::BAD_REQUEST);
        assert!(opened.headers().get("set-cookie").is_none());
        // Nor with a state cookie of their own: the code belongs to Mallory's browser.
        victim.get(server.app_url("wiki.localhost", "/")).send().await.unwrap();
        let again = victim.get(link.clone()).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        // The sign-in page refuses to issue a code without the browser's state.
        let rd = urlencode(&server.app_url("wiki.localhost", "/"));
        let bare = admin.browser.get(format!("{}?rd={rd}", server.url("/proxy/sign-in"))).send().await.unwrap();
        assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
        // In Mallory's own browser the link still works, once.
        let own = mallory.get(link.clone()).send().await.unwrap();
        assert_eq!(own.status(), StatusCode::FOUND);
        server.stop().await;
    };

    paths_are_checked_as_the_app_will_read_them => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"], "public_paths": ["/health"] })).await;
        add_route(&server, &admin, json!({ "host": "tools.localhost", "path_prefix": "/app", "upstream": upstream.url(), "app": "tools", "groups": ["staff"] })).await;
        let port = server.proxy_addr.unwrap().port();
        // Raw requests: an HTTP client would tidy these paths before sending them.
        let raw = |host: &'static str, target: &'static str, extra: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.write_all(format!("GET {target} HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n").as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        for target in ["/health/../admin", "/health/%2e%2e/admin", "/health/..;/admin", "/health%2f..%2fadmin", "/health\\..\\admin"] {
            let answer = raw("wiki.localhost", target, "").await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
        }
        // An escaped letter is the letter: /%68ealth is the public /health, and reaches the app
        // as /health.
        let answer = raw("wiki.localhost", "/%68ealth", "").await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"path\":\"/health\""), "{answer}");
        // Underscored twins of identity headers never reach the app, on public paths too.
        let answer = raw("wiki.localhost", "/health", "x_forwarded_user: root\r\nx-real-ip: 10.9.9.9\r\nx-original-url: /admin\r\n").await;
        assert!(!answer.contains("x_forwarded_user") && !answer.contains("10.9.9.9") && !answer.contains("/admin"), "{answer}");
        assert!(answer.contains("\"x-real-ip\":\"127.0.0.1\""), "{answer}");
        // The address the app is told is each connection's own, for every request it carries
        // (the edge writes it once per connection): two requests on one connection from
        // 127.0.0.2, then one from 127.0.0.3.
        for (from, requests) in [("127.0.0.2", 2), ("127.0.0.3", 1)] {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
            let ask = |last: bool| format!("GET /health HTTP/1.1\r\nhost: wiki.localhost\r\n{}\r\n", if last { "connection: close\r\n" } else { "" });
            for turn in 1..=requests {
                stream.write_all(ask(turn == requests).as_bytes()).await.unwrap();
            }
            let mut answers = String::new();
            stream.read_to_string(&mut answers).await.unwrap();
            for header in ["x-forwarded-for", "x-real-ip"] {
                assert_eq!(answers.matches(&format!("\"{header}\":\"{from}\"")).count(), requests, "{answers}");
            }
        }
        // A host routed under a prefix still takes the sign-in hand-over.
        let answer = raw("tools.localhost", "/.stackgate/callback?code=x", "").await;
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("expired"), "{answer}");
        server.stop().await;
    };

    a_sign_in_cannot_be_bounced_elsewhere => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"] })).await;
        let browser = admin.browser.clone();
        // Another port of the app's host may be another program (cookies do not tell ports
        // apart): only the edge's own ports are handed a sign-in.
        let other_port = "http://wiki.localhost:1/".to_owned();
        for rd in ["https://evil.example/", "http://evil.localhost/", "javascript:alert(1)", "https://wiki.localhost/", "http://user@wiki.localhost/", &other_port] {
            let url = format!("{}?rd={}&state={}", server.url("/proxy/sign-in"), urlencode(rd), "s".repeat(43));
            let response = browser.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{rd}");
        }
        // Signed in, a good return URL gets a code for that host only.
        let rd = server.app_url("wiki.localhost", "/a?b=c");
        let nonce = "n".repeat(43);
        let state = stackgate_identity::hash_secret(&nonce);
        let response = browser.get(format!("{}?rd={}&state={state}", server.url("/proxy/sign-in"), urlencode(&rd))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let callback = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(callback.host_str(), Some("wiki.localhost"));
        let pairs: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
        assert_eq!(pairs["rd"], "/a?b=c");
        // The callback refuses to send anyone off the host.
        let edge = server.edge_browser(&["wiki.localhost"]);
        let code = &pairs["code"];
        let out = edge.get(server.app_url("wiki.localhost", &format!("/.stackgate/callback?code={code}&rd=//evil.example/")))
            .header("cookie", format!("stackgate_state={nonce}"))
            .send().await.unwrap();
        assert_eq!(out.status(), StatusCode::FOUND);
        assert_eq!(out.headers()["location"], "/");
        server.stop().await;
    };

    websockets_pass_through => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "chat.localhost", "upstream": upstream.url(), "app": "chat", "groups": ["staff"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        let browser = server.edge_browser(&["chat.localhost"]);
        let page = open_signed_in(&server, &browser, &server.app_url("chat.localhost", "/"), "ana").await;
        assert_eq!(page.status(), StatusCode::OK);
        // With the edge cookie for the app host, as a WebSocket client sends it.
        let mut socket = open_websocket(&server, "chat.localhost", "ana").await;
        for text in ["hello", "through the edge"] {
            assert!(echoes(&mut socket, text).await, "{text}");
        }
        let addr = server.proxy_addr.unwrap();
        // Without the cookie, no upgrade.
        let mut anonymous = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("ws://chat.localhost:{}/ws", addr.port()),
        )
        .unwrap();
        anonymous.headers_mut().insert("x-forwarded-user", "ana".parse().unwrap());
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(tokio_tungstenite::client_async(anonymous, stream).await.is_err());
        server.stop().await;
    };

    websockets_end_with_their_session_or_access => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "chat.localhost", "upstream": upstream.url(), "app": "chat", "groups": ["staff"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        user(&server, &admin, "bo", &["staff"]).await;
        let mut ana = open_websocket(&server, "chat.localhost", "ana").await;
        let mut bo = open_websocket(&server, "chat.localhost", "bo").await;
        assert!(echoes(&mut ana, "before").await && echoes(&mut bo, "before").await);
        // An admin signs ana out: her open tunnel ends with her session, bo's stays.
        let (status, _) = api(&server, &admin, reqwest::Method::POST, "/users/ana/sign-out", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ends_soon(&mut ana).await, "a signed-out session's WebSocket is closed");
        assert!(echoes(&mut bo, "still here").await, "other sessions keep theirs");
        // bo leaves the group the route admits: the policy now refuses him, and his tunnel ends.
        let (status, _) = api(&server, &admin, reqwest::Method::DELETE, "/groups/staff/members/bo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(ends_soon(&mut bo).await, "a tunnel the policy no longer allows is closed");
        server.stop().await;
    };
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Signs `username` in to `host` and opens a WebSocket to the echo upstream's `/ws` through the
/// edge.
async fn open_websocket(server: &TestServer, host: &str, username: &str) -> WebSocket {
    let cookie = proxy_cookie(server, host, username).await;
    let addr = server.proxy_addr.unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{host}:{}/ws",
            addr.port()
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// Whether `text` comes back through the tunnel.
async fn echoes(socket: &mut WebSocket, text: &str) -> bool {
    use futures_util::{SinkExt, StreamExt};
    if socket
        .send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .is_err()
    {
        return false;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(message))) => message.into_text().is_ok_and(|t| t.as_str() == text),
        _ => false,
    }
}

/// Whether the edge closes the tunnel within two seconds (well before the periodic re-check):
/// nothing more arrives, and a message sent is not echoed.
async fn ends_soon(socket: &mut WebSocket) -> bool {
    use futures_util::StreamExt;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    closed && !echoes(socket, "after").await
}

/// Signs `username` in to `host` with a fresh browser and returns the edge cookie it was given,
/// as a `Cookie` header value (reqwest does not expose its cookie jar).
pub(crate) async fn proxy_cookie(server: &TestServer, host: &str, username: &str) -> String {
    let fresh = server.edge_browser(&[host]);
    let first = fresh.get(server.app_url(host, "/")).send().await.unwrap();
    let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
    let callback = sign_in_and_authorize(server, &fresh, &sign_in, username, PASSWORD).await;
    let back = fresh.get(callback).send().await.unwrap();
    let set = back.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// Reads one response with a `Content-Length` body from `stream`; bytes read past it stay in
/// `unread` for the next call.
pub(crate) async fn read_response(
    stream: &mut tokio::net::TcpStream,
    unread: &mut Vec<u8>,
) -> (String, String) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = unread.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(unread[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            if unread.len() >= end + 4 + length {
                let body = String::from_utf8(unread[end + 4..end + 4 + length].to_vec()).unwrap();
                unread.drain(..end + 4 + length);
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed before a whole answer: {:?}",
            String::from_utf8_lossy(unread)
        );
        unread.extend_from_slice(&chunk[..n]);
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    url_escape(s)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

stackgate_testkit::on_both_backends_with! {
    &[
        ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
        ("STACKGATE_PROXY_UPSTREAM_RESPONSE_TIMEOUT", "1"),
        ("STACKGATE_PROXY_MAX_HEADERS", "20"),
        ("STACKGATE_PROXY_HEADER_READ_TIMEOUT", "1"),
        ("STACKGATE_PROXY_UPSTREAM_MAX_CONNECTIONS", "1"),
        ("STACKGATE_PROXY_UPSTREAM_CONNECT_TIMEOUT", "1"),
        ("STACKGATE_PROXY_BODY_IDLE_TIMEOUT", "3"),
    ];

    slow_or_missing_apps_and_oversized_requests_get_clear_answers => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        let gone = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", probe.local_addr().unwrap())
        };
        add_route(&server, &admin, json!({ "host": "slow.localhost", "upstream": upstream.url(), "app": "slow", "public_paths": ["/"] })).await;
        add_route(&server, &admin, json!({ "host": "gone.localhost", "upstream": gone, "app": "gone", "public_paths": ["/"] })).await;
        let client = server.edge_browser(&["slow.localhost", "gone.localhost"]);
        let started = std::time::Instant::now();
        let late = client.get(server.app_url("slow.localhost", "/slow/5")).send().await.unwrap();
        assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "the wait is bounded");
        let down = client.get(server.app_url("gone.localhost", "/")).send().await.unwrap();
        assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
        assert!(down.text().await.unwrap().contains("not answering"));
        let mut crowded = client.get(server.app_url("slow.localhost", "/"));
        for i in 0..40 {
            crowded = crowded.header(format!("x-filler-{i}"), "x");
        }
        let refused = crowded.send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let fine = client.get(server.app_url("slow.localhost", "/")).send().await.unwrap();
        assert_eq!(fine.status(), StatusCode::OK);

        // Requests one after another reach the app on one pooled connection.
        let mut peers = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let peer = client.get(server.app_url("slow.localhost", "/peer")).send().await.unwrap();
            assert_eq!(peer.status(), StatusCode::OK);
            peers.insert(peer.text().await.unwrap());
        }
        assert_eq!(peers.len(), 1, "the upstream saw requests from {peers:?}");
        // Five at once, each keeping its upstream connection busy for 100 ms, on as many client
        // connections, still reach it on one connection (`proxy_upstream_max_connections = 1`):
        // each waits for the connection given back.
        let mut at_once = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let request = server
                .edge_browser(&["slow.localhost"])
                .get(server.app_url("slow.localhost", "/peer/100"));
            at_once.spawn(async move {
                let peer = request.send().await.unwrap();
                assert_eq!(peer.status(), StatusCode::OK);
                peer.text().await.unwrap()
            });
        }
        let peers: std::collections::BTreeSet<String> = at_once.join_all().await.into_iter().collect();
        assert_eq!(peers.len(), 1, "the upstream saw requests from {peers:?}");
        // While a download no one reads keeps that connection busy, a request that has waited
        // the connect timeout (1 s) is told the app is busy; once the edge has given up on the
        // reader (it took nothing for the send timeout, 3 s here), the app is served again.
        let unread = client.get(server.app_url("slow.localhost", "/download/104857600")).send().await.unwrap();
        assert_eq!(unread.status(), StatusCode::OK);
        // A request from a new client, and whether one is answered within so many tries.
        let fresh = || async { server.edge_browser(&["slow.localhost"]).get(server.app_url("slow.localhost", "/")).send().await.unwrap() };
        let served_again = |tries: usize| async move {
            for _ in 0..tries {
                if fresh().await.status() == StatusCode::OK {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            false
        };
        let started = std::time::Instant::now();
        let busy = fresh().await;
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "refused, not left to time out");
        assert_eq!(busy.headers()["retry-after"], "5");
        assert!(busy.text().await.unwrap().contains("The app is busy"));
        assert_eq!(server.metric("stackgate_edge_upstream_busy_total").await, Some(1.0), "counted for the admin");
        assert!(served_again(10).await, "the stalled download still holds the app's one connection");
        assert!(unread.bytes().await.is_err(), "the stalled download was cut off");
        // A short answer is read whole before it is passed on, and its connection given back:
        // an HTTP/2 stream whose window stays shut (nothing of the answer can be sent) holds
        // none of the app's connections.
        let shut = reqwest::Client::builder()
            .http2_prior_knowledge()
            .http2_initial_stream_window_size(0)
            .resolve("slow.localhost", server.proxy_addr.unwrap())
            .build()
            .unwrap();
        let stuck = shut.get(server.app_url("slow.localhost", "/")).send().await.unwrap();
        assert_eq!((stuck.status(), stuck.version()), (StatusCode::OK, reqwest::Version::HTTP_2));
        assert_eq!(fresh().await.status(), StatusCode::OK, "the unread answer holds the app's one connection");
        drop(stuck);
        // A long answer is passed on as it comes, holding the connection; on a stream whose
        // window stays shut, the edge drops it once the client has taken nothing for the send
        // timeout, as it does an HTTP/1 reader's, and the app is served again.
        let stuck = shut.get(server.app_url("slow.localhost", "/download/104857600")).send().await.unwrap();
        assert_eq!(stuck.status(), StatusCode::OK);
        assert_eq!(fresh().await.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(served_again(30).await, "the shut stream still holds the app's one connection");
        drop(stuck);

        // One kept-alive connection (which the edge serves holding no buffers between
        // requests): requests one after another, one with a body, and two pipelined in a single
        // write are each answered, in order, and the connection stays open.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = server.proxy_addr.unwrap().port();
        let mut kept = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut unread = Vec::new();
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: slow.localhost\r\n\r\n");
        let mut expect = Vec::new();
        for path in ["/one", "/two"] {
            kept.write_all(get(path).as_bytes()).await.unwrap();
            expect.push(path);
            let (head, body) = read_response(&mut kept, &mut unread).await;
            assert!(head.starts_with("HTTP/1.1 200") && !head.to_ascii_lowercase().contains("connection: close"), "{head}");
            assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["path"], path);
        }
        kept.write_all(b"POST /three HTTP/1.1\r\nhost: slow.localhost\r\ncontent-length: 5\r\n\r\nhello").await.unwrap();
        let (head, body) = read_response(&mut kept, &mut unread).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["path"], "/three");
        for _ in 0..2 {
            kept.write_all(format!("{}{}", get("/four"), get("/five")).as_bytes()).await.unwrap();
            for path in ["/four", "/five"] {
                let (head, body) = read_response(&mut kept, &mut unread).await;
                assert!(head.starts_with("HTTP/1.1 200") && !head.to_ascii_lowercase().contains("connection: close"), "{head}");
                assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["path"], path);
            }
        }
        assert!(unread.is_empty(), "nothing more was answered");

        // A client that connects and sends nothing, sends its headers too slowly, or keeps a
        // connection idle after its request, is cut off by the header read timeout.
        let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut nothing = Vec::new();
        let cut = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read_to_end(&mut nothing)).await;
        assert!(cut.is_ok(), "a connection that never sends a byte is not kept forever");
        let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: slow.localhost\r\n").await.unwrap();
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(cut.is_ok(), "a half-sent request head is not waited for forever");
        let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: slow.localhost\r\n\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), idle.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "an idle kept-alive connection is closed");
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
        assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    an_app_behind_the_edge_is_told_each_persons_role_and_no_one_can_claim_another => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        let (status, body) = api(&server, &admin, reqwest::Method::POST, "/proxy/routes", Some(json!({
            "host": "meet.localhost", "upstream": upstream.url(), "app": "meet",
            "groups": ["staff", "hosts"], "public_paths": ["/health"],
            "roles": { "header": "X-Forwarded-User", "user": "participant", "admin": "moderator" },
        }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an identity header cannot carry the role: {body}");
        let route = add_route(&server, &admin, json!({
            "host": "meet.localhost", "upstream": upstream.url(), "app": "meet",
            "groups": ["staff", "hosts"], "public_paths": ["/health"],
            "roles": { "header": "X-Role", "user": "participant", "admin": "moderator", "admin_groups": ["hosts"] },
        })).await;
        assert_eq!(route["role_header"], "X-Role");
        user(&server, &admin, "ana", &["staff"]).await;
        user(&server, &admin, "ben", &["hosts"]).await;

        let public = server.edge_browser(&["meet.localhost"])
            .get(server.app_url("meet.localhost", "/health"))
            .header("X-Role", "moderator")
            .send().await.unwrap();
        assert!(echoed(public).await["headers"].get("x-role").is_none(), "a claimed role never passes");

        let ana = server.edge_browser(&["meet.localhost"]);
        let seen = echoed(open_signed_in(&server, &ana, &server.app_url("meet.localhost", "/room"), "ana").await).await;
        assert_eq!(seen["headers"]["x-role"], "participant");
        let claimed = echoed(ana.get(server.app_url("meet.localhost", "/room")).header("X-Role", "moderator").send().await.unwrap()).await;
        assert_eq!(claimed["headers"]["x-role"], "participant", "a plain user cannot claim the admin role: {claimed}");

        let ben = server.edge_browser(&["meet.localhost"]);
        let seen = echoed(open_signed_in(&server, &ben, &server.app_url("meet.localhost", "/room"), "ben").await).await;
        assert_eq!(seen["headers"]["x-role"], "moderator");
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends_with! {
    &[
        ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
        ("STACKGATE_PROXY_BODY_IDLE_TIMEOUT", "1"),
        ("STACKGATE_PROXY_MAX_CONNECTIONS", "16"),
    ];

    stalled_uploads_and_connection_floods_are_bounded => |server: TestServer| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "files.localhost", "upstream": upstream.url(), "app": "files", "public_paths": ["/"] })).await;
        let port = server.proxy_addr.unwrap().port();
        let connect = || tokio::net::TcpStream::connect(("127.0.0.1", port));
        let five_seconds = std::time::Duration::from_secs(5);

        // An upload that announces 100 bytes, sends 10 and stops: 408 after the body idle
        // timeout, not a connection (and an upstream request) held open forever.
        let mut stalled = connect().await.unwrap();
        stalled
            .write_all(b"POST /upload HTTP/1.1\r\nhost: files.localhost\r\ncontent-length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0; 64];
        let read = tokio::time::timeout(five_seconds, stalled.read(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer[..read.unwrap().unwrap()]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
        drop(stalled);
        // One that keeps sending, however slowly, is fine.
        let mut steady = connect().await.unwrap();
        steady
            .write_all(b"POST /upload HTTP/1.1\r\nhost: files.localhost\r\ncontent-length: 4\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        for byte in b"slow" {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            steady.write_all(&[*byte]).await.unwrap();
        }
        let mut answer = Vec::new();
        tokio::time::timeout(five_seconds, steady.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""bytes":4"#), "{answer}");
        drop(steady);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        // Sixteen idle connections fill the edge; the seventeenth is closed at once.
        let mut held = Vec::new();
        for _ in 0..16 {
            held.push(connect().await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut extra = connect().await.unwrap();
        let mut buf = [0u8; 16];
        let refused = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf)).await;
        assert!(matches!(refused, Ok(Ok(0)) | Ok(Err(_))), "over the limit: closed, {refused:?}");
        // Operators see the edge full and the refusal.
        assert_eq!(server.metric(r#"stackgate_edge_connections{listener="edge"}"#).await, Some(16.0));
        assert_eq!(server.metric(r#"stackgate_edge_connections_refused_total{listener="edge"}"#).await, Some(1.0));
        // A slot that frees up is served again.
        drop(held.pop());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut next = connect().await.unwrap();
        next.write_all(b"GET /ok HTTP/1.1\r\nhost: files.localhost\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(five_seconds, next.read_to_end(&mut answer)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
        drop(held);
        drop(next);
        let deadline = std::time::Instant::now() + five_seconds;
        while server.metric(r#"stackgate_edge_connections{listener="edge"}"#).await != Some(0.0) {
            assert!(std::time::Instant::now() < deadline, "closed connections are counted out");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends_with! {
    &[
        ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
        ("STACKGATE_PROXY_COOKIE_DOMAIN", "apps.localhost"),
    ];

    a_parent_domain_cookie_opens_every_app_under_the_domain_and_no_other => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        for (host, app, group) in [
            ("wiki.apps.localhost", "wiki", "staff"),
            ("board.apps.localhost", "board", "staff"),
            ("vault.apps.localhost", "vault", "finance"),
            ("chat.localhost", "chat", "staff"),
        ] {
            add_route(&server, &admin, json!({ "host": host, "upstream": upstream.url(), "app": app, "groups": [group] })).await;
        }
        user(&server, &admin, "ana", &["staff"]).await;
        let hosts = ["wiki.apps.localhost", "board.apps.localhost", "vault.apps.localhost", "chat.localhost"];
        let browser = server.edge_browser(&hosts);

        // One hand-over, on the first app's host, sets a cookie for the whole domain.
        let first = browser.get(server.app_url("wiki.apps.localhost", "/")).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::FOUND);
        let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
        let callback = sign_in_and_authorize(&server, &browser, &sign_in, "ana", PASSWORD).await;
        let back = browser.get(callback).send().await.unwrap();
        assert_eq!(back.status(), StatusCode::FOUND);
        let set: Vec<String> = back.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_owned()).collect();
        let shared = set.iter().find(|c| c.starts_with("stackgate_proxy_shared=")).unwrap_or_else(|| panic!("{set:?}"));
        assert!(shared.contains("; Domain=apps.localhost") && shared.contains("HttpOnly"), "{shared}");
        let cookie = shared.split(';').next().unwrap().to_owned();

        let wiki = echoed(browser.get(server.app_url("wiki.apps.localhost", "/")).send().await.unwrap()).await;
        assert_eq!(wiki["headers"]["x-forwarded-user"], "ana");
        // Another app under the domain: no second hand-over; the cookie still never reaches apps.
        let other = server.edge_browser(&hosts);
        let board = echoed(other.get(server.app_url("board.apps.localhost", "/")).header("cookie", &cookie).send().await.unwrap()).await;
        assert_eq!(board["headers"]["x-forwarded-user"], "ana", "{board}");
        assert!(board["headers"].get("cookie").is_none(), "{board}");
        // The access policy is still per app, and a host outside the domain has its own cookie.
        let vault = other.get(server.app_url("vault.apps.localhost", "/")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(vault.status(), StatusCode::FORBIDDEN);
        let chat = other.get(server.app_url("chat.localhost", "/")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(chat.status(), StatusCode::FOUND, "outside the domain the shared cookie is no session");
        // A host-only cookie name with the shared secret is no session either.
        let renamed = cookie.replacen("stackgate_proxy_shared=", "stackgate_proxy=", 1);
        let board = other.get(server.app_url("board.apps.localhost", "/")).header("cookie", &renamed).send().await.unwrap();
        assert_eq!(board.status(), StatusCode::FOUND);

        // Signing the person out ends the shared session on every host at once.
        let (status, _) = api(&server, &admin, reqwest::Method::POST, "/users/ana/sign-out", None).await;
        assert!(status.is_success(), "{status}");
        for host in ["wiki.apps.localhost", "board.apps.localhost"] {
            let after = other.get(server.app_url(host, "/")).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(after.status(), StatusCode::FOUND, "{host}");
        }
    };
}
