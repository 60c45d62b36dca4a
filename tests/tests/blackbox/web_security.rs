//! The web rules on every route there is. The routes are read from the routers' own source and
//! from the API's OpenAPI document, so a route added later is walked too:
//! - every answer carries the security headers (CSP with no inline script, no framing, no
//!   sniffing, a referrer policy);
//! - every form that changes something refuses a forged CSRF token, and refuses a real token
//!   sent from another site; the API refuses cookie-authenticated changes from another site;
//!   nothing is written meanwhile (the audit log, which records every change, stays as it was);
//! - over HTTPS, cookies are `__Host-`, `Secure`, `HttpOnly` and `SameSite`.

use crate::proxy::api;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use stackgate_testkit::{AdminClient, TestServer, hidden_field};

const ROUTERS: [&str; 3] = [
    include_str!("../../../crates/stackgate-web/src/pages.rs"),
    include_str!("../../../crates/stackgate-web/src/oidc.rs"),
    include_str!("../../../crates/stackgate-web/src/ops.rs"),
];

/// Each `.route(PATH, METHOD(handler)...)` call in a router's source: its path and methods.
fn routes_in(source: &str) -> Vec<(String, Vec<Method>)> {
    let mut routes = Vec::new();
    for call in source.split(".route(").skip(1) {
        // The call ends where the builder's next call or the function does.
        let call = call.split("\n}").next().unwrap();
        let path = call.split('"').nth(1).unwrap().to_owned();
        let mut methods = Vec::new();
        for (name, method) in [
            ("get", Method::GET),
            ("post", Method::POST),
            ("put", Method::PUT),
            ("patch", Method::PATCH),
            ("delete", Method::DELETE),
            // `any`: the forward-auth endpoint, asked with GET by ingresses.
            ("any", Method::GET),
        ] {
            let called = call.match_indices(&format!("{name}(")).any(|(at, _)| {
                at == 0
                    || !call.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && call.as_bytes()[at - 1] != b'_'
            });
            if called && !methods.contains(&method) {
                methods.push(method);
            }
        }
        assert!(!methods.is_empty(), "no method found for {path}");
        routes.push((path, methods));
    }
    routes
}

/// Routes that take no CSRF token, and why.
fn without_csrf(path: &str) -> Option<&'static str> {
    Some(match path {
        // OAuth endpoints: the caller is an app with its client credentials or a bearer token,
        // never a browser's cookie.
        "/token" | "/introspect" | "/revoke" | "/userinfo" => "app-authenticated",
        // Requests an app sends through the browser, by the OAuth and OIDC specs: they start a
        // sign-in or ask for a sign-out confirmation, and change nothing by themselves.
        "/authorize" | "/end_session" => "protocol request",
        // The passkey ceremony before anyone is known: the origin check guards it (tested
        // below), and the WebAuthn assertion itself is bound to the origin.
        "/login/passkey/start" => "origin-checked",
        // The second half of a WebAuthn ceremony names a ceremony only the page that started
        // it (behind the CSRF or origin check) knows, and carries an origin-bound signature.
        "/login/passkey/finish"
        | "/login/second-factor/webauthn/finish"
        | "/account/webauthn/register/finish" => "ceremony-bound",
        _ => return None,
    })
}

fn assert_security_headers(what: &str, headers: &HeaderMap) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
            && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "same-origin", "{what}");
}

/// Every field some form takes, filled in, so that each form reaches its CSRF check (a form
/// missing a field would be refused earlier, which would prove nothing).
fn form_fields(csrf: &str) -> Vec<(&'static str, String)> {
    let password = "a password long enough to be taken";
    [
        ("csrf", csrf),
        ("token", "a-setup-or-link-token"),
        ("confirm", "yes"),
        ("username", "victim"),
        ("email", "victim2@example.org"),
        ("display_name", "Victim"),
        ("description", "changed"),
        ("mfa_policy", "optional"),
        ("group", "victims"),
        ("name", "renamed"),
        ("password", password),
        ("password_confirm", password),
        ("new_password", password),
        ("new_password_confirm", password),
        ("code", "123456"),
        ("request", "{}"),
        ("decision", "allow"),
        ("app", "demo"),
        ("user_groups", "victims"),
        ("admin_groups", ""),
        ("redirect_uris", "https://victim.example.org/cb"),
        ("post_logout_redirect_uris", ""),
        ("backchannel_logout_uri", ""),
        ("kind", "confidential"),
        ("organisation_name", "Taken over"),
        ("policy", "permit(principal, action, resource);"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

struct Victims {
    user_id: String,
    group_id: String,
}

async fn audit_count(server: &TestServer, admin: &AdminClient) -> usize {
    let (status, page) = api(server, admin, Method::GET, "/audit?limit=500", None).await;
    assert_eq!(status, StatusCode::OK);
    page["items"].as_array().unwrap().len()
}

/// A concrete path: parameters become things that exist, so that a missing check would have
/// something to change.
fn concrete(path: &str, victims: &Victims) -> String {
    let id = if path.starts_with("/admin/users/") {
        victims.user_id.as_str()
    } else if path.starts_with("/admin/groups/") {
        victims.group_id.as_str()
    } else if path.starts_with("/admin/clients/") {
        "victim-app"
    } else if path.starts_with("/admin/apps/") {
        "demo"
    } else {
        "00000000-0000-4000-8000-000000000000"
    };
    path.replace("{id}", id).replace("{action}", "delete")
}

async fn walk(server: TestServer) {
    let admin = server.bootstrap_admin().await;
    let (status, user) = api(
        &server,
        &admin,
        Method::POST,
        "/users",
        Some(json!({ "username": "victim", "email": "victim@example.org" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, group) = api(
        &server,
        &admin,
        Method::POST,
        "/groups",
        Some(json!({ "name": "victims" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let (status, client) = api(&server, &admin, Method::POST, "/clients", Some(json!({ "id": "victim-app", "name": "Victim", "redirect_uris": ["https://victim.example.org/cb"] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let victims = Victims {
        user_id: user["id"].as_str().unwrap().to_owned(),
        group_id: group["id"].as_str().unwrap().to_owned(),
    };
    let browser = &admin.browser;
    let page = crate::mfa::get(browser, server.url("/admin/users")).await;
    let csrf = hidden_field(&page, "csrf");
    let audited = audit_count(&server, &admin).await;

    let routes: Vec<_> = ROUTERS
        .iter()
        .flat_map(|source| routes_in(source))
        .collect();
    assert!(routes.len() > 50, "the routers were read: {routes:?}");
    let mut walked = (0, 0);
    for (path, methods) in &routes {
        let url = server.url(&concrete(path, &victims));
        for method in methods {
            if *method == Method::GET {
                let response = browser.get(&url).send().await.unwrap();
                assert!(
                    !response.status().is_server_error(),
                    "GET {path}: {}",
                    response.status()
                );
                assert_security_headers(&format!("GET {path}"), response.headers());
                walked.0 += 1;
                continue;
            }
            let json = path.ends_with("/start") || path.ends_with("/finish");
            let send = |token: &str, origin: &str| {
                let request = browser
                    .request(method.clone(), &url)
                    .header("origin", origin);
                let request = if json {
                    request.json(&json!({
                        "csrf": token,
                        "name": "key",
                        "kind": "passkey",
                        "password": "a password long enough to be taken",
                        "ceremony": "00000000-0000-4000-8000-000000000000",
                        "credential": {
                            "id": "AAAA",
                            "rawId": "AAAA",
                            "type": "public-key",
                            "extensions": {},
                            "response": {
                                "authenticatorData": "AAAA",
                                "clientDataJSON": "AAAA",
                                "signature": "AAAA",
                                "attestationObject": "AAAA",
                            },
                        },
                    }))
                } else if path == "/admin/settings" {
                    // The settings form uploads a logo.
                    let mut form = reqwest::multipart::Form::new();
                    for (name, value) in form_fields(token) {
                        form = form.text(name, value);
                    }
                    request.multipart(form)
                } else {
                    request.form(&form_fields(token))
                };
                request.send()
            };
            // A real token from another site: refused by every form, and by the origin-checked
            // ceremony too.
            let cross_site = send(&csrf, "https://evil.example").await.unwrap();
            assert_security_headers(&format!("{method} {path}"), cross_site.headers());
            match without_csrf(path) {
                Some("ceremony-bound") => {
                    assert!(
                        cross_site.status().is_client_error(),
                        "{method} {path}: {}",
                        cross_site.status()
                    );
                }
                Some("app-authenticated") | Some("protocol request") => {
                    assert!(
                        !cross_site.status().is_server_error(),
                        "{method} {path}: {}",
                        cross_site.status()
                    );
                }
                _ => assert_eq!(
                    cross_site.status(),
                    StatusCode::FORBIDDEN,
                    "{method} {path} from another site"
                ),
            }
            // Our own origin with a forged token: refused by every form.
            if without_csrf(path).is_none() {
                let forged = send("forged", server.base_url.as_str()).await.unwrap();
                let expected = StatusCode::FORBIDDEN;
                assert_eq!(
                    forged.status(),
                    expected,
                    "{method} {path} with a forged token"
                );
            }
            walked.1 += 1;
        }
    }

    // The API: each documented operation, with the admin's cookie from another site.
    let doc: Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for name in ["get", "post", "put", "patch", "delete"] {
            if item.get(name).is_none() {
                continue;
            }
            let method: Method = name.to_uppercase().parse().unwrap();
            let concrete: String = path
                .split('/')
                .map(|s| match s {
                    "{username}" | "{user}" => "victim",
                    "{group}" | "{name}" => "victims",
                    "{client_id}" | "{client}" => "victim-app",
                    s if s.starts_with('{') => "victim",
                    s => s,
                })
                .collect::<Vec<_>>()
                .join("/");
            let url = server.url(&format!("/api/v1{concrete}"));
            let response = if method == Method::GET {
                browser.get(&url).send().await.unwrap()
            } else {
                browser
                    .request(method.clone(), &url)
                    .header("origin", "https://evil.example")
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
            };
            assert_security_headers(&format!("{method} /api/v1{path}"), response.headers());
            if method == Method::GET {
                assert!(
                    !response.status().is_server_error(),
                    "GET {path}: {}",
                    response.status()
                );
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::FORBIDDEN,
                    "{method} /api/v1{path} with a cookie from another site"
                );
            }
            walked.1 += usize::from(method != Method::GET);
        }
    }

    // Nothing was written, and nothing was ended.
    assert_eq!(
        audit_count(&server, &admin).await,
        audited,
        "a refused request wrote to the audit log"
    );
    let (status, _) = api(&server, &admin, Method::GET, "/users/victim", None).await;
    assert_eq!(status, StatusCode::OK, "the victim user is still there");
    let (status, _) = api(&server, &admin, Method::GET, "/groups/victims", None).await;
    assert_eq!(status, StatusCode::OK, "the victim group is still there");
    let (status, _) = api(&server, &admin, Method::GET, "/clients/victim-app", None).await;
    assert_eq!(status, StatusCode::OK, "the victim client is still there");
    let still = browser
        .get(server.url("/account/security"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "the admin is still signed in"
    );
    assert!(walked.0 > 20 && walked.1 > 40, "walked {walked:?}");
    // The control: the same cookie write from Stackgate's own origin goes through, so the
    // refusals above were about the other site, not the cookie.
    let own = browser
        .post(server.url("/api/v1/tokens"))
        .header("origin", server.base_url.as_str())
        .json(&json!({ "name": "same site" }))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);
    stackgate_testkit::used_secrets_in(&own.json::<Value>().await.unwrap());
    server.stop().await;
}

stackgate_testkit::on_both_backends! {
    every_route_has_the_security_headers_and_refuses_forged_forms => |server: TestServer| async move {
        walk(server).await;
    };
}

/// The `Set-Cookie` header whose cookie is `name`.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"))
}

/// Over HTTPS (the issuer's scheme decides; the test speaks plain HTTP to the listener, as a
/// TLS-terminating proxy in front would), every cookie is host-only, secure and script-proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_over_https_are_host_only_secure_and_http_only() {
    let server = TestServer::start_with(
        stackgate_testkit::Backend::Sqlite,
        &[("STACKGATE_ISSUER", "https://localhost:{port}")],
    )
    .await
    .unwrap();
    let origin = server.base_url.clone();
    let plain = server.base_url.replacen("https://", "http://", 1);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The first admin, through the setup link; the session cookie comes back.
    let link = server
        .setup_link
        .clone()
        .unwrap()
        .replacen("https://", "http://", 1);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let setup = client.get(&link).send().await.unwrap();
    let csrf_cookie = set_cookie(setup.headers(), "__Host-stackgate_csrf").to_owned();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(csrf_cookie.contains(flag), "{flag} missing: {csrf_cookie}");
    }
    assert!(!csrf_cookie.contains("Domain="), "host-only: {csrf_cookie}");
    let cookie_pair = csrf_cookie.split(';').next().unwrap().to_owned();
    let csrf = hidden_field(&setup.text().await.unwrap(), "csrf");
    let done = client
        .post(format!("{plain}/setup"))
        .header("origin", &origin)
        .header("cookie", &cookie_pair)
        .form(&[
            ("token", token.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "root"),
            ("email", "root@example.org"),
            ("display_name", "First Admin"),
            ("password", stackgate_testkit::ADMIN_PASSWORD),
            ("password_confirm", stackgate_testkit::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(done.headers(), "__Host-stackgate_session");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    assert!(!session.contains("Domain="), "host-only: {session}");
    assert!(
        done.headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| c.to_str().unwrap().starts_with("__Host-")),
        "every cookie is __Host-: {:?}",
        done.headers()
    );
    let hsts = client.get(format!("{plain}/login")).send().await.unwrap();
    assert_eq!(
        hsts.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    server.stop().await;
}
