//! The OpenID provider's negative table: each row one way a request can be wrong, each with the
//! exact protocol error it must get. Plus key rotation.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stackgate_identity::{Clock, FixedClock, SystemClock};
use stackgate_testkit::{
    ADMIN_PASSWORD, AdminClient, Backend, TestServer, on_both_backends, sign_in_and_authorize,
};
use std::sync::Arc;

const REDIRECT: &str = "https://app.example.org/callback";

struct Rp {
    id: String,
    secret: String,
}

async fn register(server: &TestServer, admin: &AdminClient, id: &str, extra: Value) -> Rp {
    let mut body = json!({ "id": id, "name": format!("App {id}"), "redirect_uris": [REDIRECT], "first_party": true });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(&admin.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    Rp {
        id: id.into(),
        secret: created["client_secret"].as_str().unwrap_or_default().into(),
    }
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(stackgate_identity::random_bytes::<32>().unwrap());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(
    server: &TestServer,
    client: &str,
    redirect: &str,
    challenge: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let mut query = url_encode(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid profile email groups"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
    ]);
    if let Some(challenge) = challenge {
        query.push('&');
        query.push_str(&url_encode(&[
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]));
    }
    if !extra.is_empty() {
        query.push('&');
        query.push_str(&url_encode(extra));
    }
    server.url(&format!("/authorize?{query}"))
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn query(url: &reqwest::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn post_form(
    server: &TestServer,
    path: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(server.url(path)).form(form);
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Signs in as root and returns a fresh code and its verifier.
async fn code(server: &TestServer, browser: &reqwest::Client, rp: &Rp) -> (String, String) {
    let (verifier, challenge) = pkce();
    let back = sign_in_and_authorize(
        server,
        browser,
        &authorize_url(server, &rp.id, REDIRECT, Some(&challenge), &[]),
        "root",
        ADMIN_PASSWORD,
    )
    .await;
    assert_eq!(query(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query(&back, "iss").as_deref(),
        Some(server.base_url.as_str())
    );
    (
        query(&back, "code").unwrap_or_else(|| panic!("no code in {back}")),
        verifier,
    )
}

async fn exchange(server: &TestServer, rp: &Rp, code: &str, verifier: &str) -> (StatusCode, Value) {
    post_form(
        server,
        "/token",
        Some((&rp.id, &rp.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn userinfo(server: &TestServer, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("(none)")
}

on_both_backends! {
    code_flow_issues_what_it_should => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "app", json!({})).await;
        let browser = server.browser();
        let (code, verifier) = code(&server, &browser, &rp).await;
        let (status, tokens) = exchange(&server, &rp, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        let id_token = tokens["id_token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        for claim in ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"] {
            assert!(claims.get(claim).is_some(), "ID token lacks {claim}: {claims}");
        }
        assert_eq!(claims["iss"], server.base_url.as_str());
        assert_eq!(claims["aud"], "app");
        assert_eq!(claims["nonce"], "n0nce");
        assert_eq!(claims["amr"], json!(["pwd"]));
        assert_eq!(claims["groups"], json!(["admins"]));
        assert_eq!(claims["email"], "root@example.org");
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256", "ES256 by default");
        let access: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(access["client_id"], "app");
        let info: Value = reqwest::Client::new().get(server.url("/userinfo")).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["preferred_username"], "root");
        // A second app in the same browser needs no new sign-in: single sign-on.
        let other = register(&server, &admin, "other", json!({ "id_token_alg": "RS256" })).await;
        let (code, verifier) = self::code(&server, &browser, &other).await;
        let (_, tokens) = exchange(&server, &other, &code, &verifier).await;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(tokens["id_token"].as_str().unwrap().split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256", "per-client algorithm");
    };

    a_replayed_code_fails_and_revokes_what_it_issued => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "app", json!({})).await;
        let (code, verifier) = code(&server, &server.browser(), &rp).await;
        let (_, tokens) = exchange(&server, &rp, &code, &verifier).await;
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(userinfo(&server, access).await, StatusCode::OK);
        let (status, body) = exchange(&server, &rp, &code, &verifier).await;
        assert_eq!((status, error_of(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
        assert_eq!(userinfo(&server, access).await, StatusCode::UNAUTHORIZED, "tokens of a replayed code are revoked");
        let (_, refreshed) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(error_of(&refreshed), "invalid_grant");
    };

    token_requests_that_must_fail => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "app", json!({})).await;
        let thief = register(&server, &admin, "thief", json!({})).await;
        let browser = server.browser();
        // Wrong verifier.
        let (c, _) = code(&server, &browser, &rp).await;
        let (status, body) = exchange(&server, &rp, &c, &pkce().0).await;
        assert_eq!((status, error_of(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
        // Missing verifier.
        let (c, _) = code(&server, &browser, &rp).await;
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT)]).await;
        assert_eq!(error_of(&body), "invalid_grant");
        // Wrong redirect_uri at the token endpoint.
        let (c, v) = code(&server, &browser, &rp).await;
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", "https://app.example.org/other"), ("code_verifier", &v)]).await;
        assert_eq!(error_of(&body), "invalid_grant");
        // A code redeemed by another client.
        let (c, v) = code(&server, &browser, &rp).await;
        let (_, body) = exchange(&server, &thief, &c, &v).await;
        assert_eq!(error_of(&body), "invalid_grant");
        // Wrong secret, unknown client, wrong method.
        let (c, v) = code(&server, &browser, &rp).await;
        let (status, body) = post_form(&server, "/token", Some((&rp.id, "sgs_wrong")), &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT), ("code_verifier", &v)]).await;
        assert_eq!((status, error_of(&body)), (StatusCode::UNAUTHORIZED, "invalid_client"));
        let (status, _) = post_form(&server, "/token", Some(("nobody", "x")), &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = post_form(&server, "/token", None, &[("grant_type", "authorization_code"), ("client_id", &rp.id), ("client_secret", &rp.secret), ("code", &c), ("redirect_uri", REDIRECT), ("code_verifier", &v)]).await;
        assert_eq!((status, error_of(&body)), (StatusCode::UNAUTHORIZED, "invalid_client"), "registered for basic, used post");
        // The code survived failed client authentication and still works for its owner.
        assert_eq!(exchange(&server, &rp, &c, &v).await.0, StatusCode::OK);
        // Unsupported grant type, repeated parameter, wrong content type.
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "password")]).await;
        assert_eq!(error_of(&body), "unsupported_grant_type");
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "authorization_code"), ("grant_type", "refresh_token")]).await;
        assert_eq!(error_of(&body), "invalid_request");
        let json = reqwest::Client::new().post(server.url("/token")).basic_auth(&rp.id, Some(&rp.secret)).json(&json!({ "grant_type": "client_credentials" })).send().await.unwrap();
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json.headers()["cache-control"], "no-store");
        // A client not allowed client_credentials.
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "client_credentials")]).await;
        assert_eq!(error_of(&body), "unauthorized_client");
    };

    refresh_tokens_rotate_and_reuse_revokes_the_family => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "app", json!({})).await;
        let (c, v) = code(&server, &server.browser(), &rp).await;
        let (_, first) = exchange(&server, &rp, &c, &v).await;
        let old = first["refresh_token"].as_str().unwrap().to_owned();
        let refresh = |token: String| {
            let (id, secret) = (rp.id.clone(), rp.secret.clone());
            let server = &server;
            async move { post_form(server, "/token", Some((&id, &secret)), &[("grant_type", "refresh_token"), ("refresh_token", &token)]).await }
        };
        let (status, second) = refresh(old.clone()).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        let new = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert!(second["id_token"].is_string());
        assert_eq!(userinfo(&server, second["access_token"].as_str().unwrap()).await, StatusCode::OK);
        // Narrowing works; widening does not.
        let (_, narrow) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "refresh_token"), ("refresh_token", &new), ("scope", "openid offline_access")]).await;
        assert_eq!(error_of(&narrow), "invalid_scope", "offline_access was not granted, so it cannot be asked for now");
        // A refused refresh does not spend the token: the app can retry correctly.
        let (status, third) = refresh(new).await;
        assert_eq!(status, StatusCode::OK, "{third}");
        let new = third["refresh_token"].as_str().unwrap().to_owned();
        let (_, reused) = refresh(old).await;
        assert_eq!(error_of(&reused), "invalid_grant");
        let (_, after) = refresh(new).await;
        assert_eq!(error_of(&after), "invalid_grant", "the whole family is revoked");
        assert_eq!(userinfo(&server, second["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    };

    authorization_requests_that_must_not_redirect => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        register(&server, &admin, "app", json!({})).await;
        let (_, challenge) = pkce();
        let browser = server.browser();
        for bad in [
            "https://app.example.org:8443/callback",
            "https://app.example.org/callback/extra",
            "https://app.example.org/callbacK",
            "https://APP.example.org/callback",
            "https://app.example.org@evil.example/callback",
            "https://app.example.org/callback#x",
            "https://evil.example/callback",
            "http://app.example.org/callback",
        ] {
            let response = browser.get(authorize_url(&server, "app", bad, Some(&challenge), &[])).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(response.headers().get("location").is_none(), "{bad} must not redirect");
        }
        let unknown = browser.get(authorize_url(&server, "nope", REDIRECT, Some(&challenge), &[])).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        assert!(unknown.text().await.unwrap().contains("No app called"));
    };

    authorization_errors_go_back_to_the_client => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        register(&server, &admin, "app", json!({})).await;
        let (_, challenge) = pkce();
        let browser = server.browser();
        let error_for = |url: String| {
            let browser = browser.clone();
            async move {
                let response = browser.get(url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::SEE_OTHER);
                let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
                assert!(location.as_str().starts_with(REDIRECT));
                assert_eq!(query(&location, "state").as_deref(), Some("st4te"));
                query(&location, "error").unwrap_or_default()
            }
        };
        assert_eq!(error_for(authorize_url(&server, "app", REDIRECT, None, &[])).await, "invalid_request", "PKCE is required");
        let plain = authorize_url(&server, "app", REDIRECT, None, &[("code_challenge", &challenge), ("code_challenge_method", "plain")]);
        assert_eq!(error_for(plain).await, "invalid_request", "plain PKCE is refused");
        let implicit = authorize_url(&server, "app", REDIRECT, Some(&challenge), &[]).replace("response_type=code", "response_type=token");
        assert_eq!(error_for(implicit).await, "unsupported_response_type");
        let no_openid = authorize_url(&server, "app", REDIRECT, Some(&challenge), &[]).replace("scope=openid%20", "scope=");
        assert_eq!(error_for(no_openid).await, "invalid_scope");
        let unknown_scope = authorize_url(&server, "app", REDIRECT, Some(&challenge), &[]).replace("scope=openid", "scope=openid%20admin");
        assert_eq!(error_for(unknown_scope).await, "invalid_scope");
        let silent = authorize_url(&server, "app", REDIRECT, Some(&challenge), &[("prompt", "none")]);
        assert_eq!(error_for(silent).await, "login_required", "prompt=none without a session");
    };

    third_party_apps_ask_for_consent_once => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "thirdparty", json!({ "first_party": false })).await;
        let browser = server.browser();
        let (_, challenge) = pkce();
        let url = authorize_url(&server, &rp.id, REDIRECT, Some(&challenge), &[]);
        // Sign in, then the consent page appears (the helper answers "allow").
        let back = sign_in_and_authorize(&server, &browser, &url, "root", ADMIN_PASSWORD).await;
        assert!(query(&back, "code").is_some());
        // Remembered: the next request goes straight back with a code ...
        let again = browser.get(&url).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::SEE_OTHER);
        assert!(again.headers()["location"].to_str().unwrap().starts_with(REDIRECT));
        // ... unless the app asks again with prompt=consent.
        let asked = browser.get(authorize_url(&server, &rp.id, REDIRECT, Some(&challenge), &[("prompt", "consent")])).send().await.unwrap();
        assert_eq!(asked.status(), StatusCode::OK);
        let html = asked.text().await.unwrap();
        assert!(html.contains("Allow App thirdparty?"));
        let denied = browser.post(server.url("/authorize/consent")).header("origin", server.base_url.as_str())
            .form(&[("csrf", stackgate_testkit::hidden_field(&html, "csrf").as_str()), ("request", &stackgate_testkit::decode_entities(&stackgate_testkit::hidden_field(&html, "request"))), ("decision", "deny")])
            .send().await.unwrap();
        let location = reqwest::Url::parse(denied.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(query(&location, "error").as_deref(), Some("access_denied"));
        // An admin withdraws the consent: the app's tokens stop and it must ask again.
        let (c, v) = code(&server, &browser, &rp).await;
        let (_, tokens) = exchange(&server, &rp, &c, &v).await;
        let api = reqwest::Client::new();
        let consents: Value = api.get(server.url("/api/v1/users/root/consents")).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
        assert_eq!(consents[0]["client_id"], "thirdparty");
        let revoked = api.delete(server.url("/api/v1/users/root/consents/thirdparty")).bearer_auth(&admin.token).send().await.unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        assert_eq!(userinfo(&server, tokens["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
        assert_eq!(browser.get(&url).send().await.unwrap().status(), StatusCode::OK, "the consent page again");
    };

    forged_tokens_are_refused_at_userinfo_and_introspection => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let rp = register(&server, &admin, "app", json!({})).await;
        let (c, v) = code(&server, &server.browser(), &rp).await;
        let (_, tokens) = exchange(&server, &rp, &c, &v).await;
        let access = tokens["access_token"].as_str().unwrap();
        let parts: Vec<&str> = access.split('.').collect();
        let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("00000000-0000-4000-8000-000000000000");
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let none_header = json!({ "alg": "none", "typ": "at+jwt", "kid": header["kid"] });
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(none_header.to_string()), parts[1]);
        let id_token_as_access = tokens["id_token"].as_str().unwrap();
        let (status, body) = post_form(&server, "/introspect", Some((&rp.id, &rp.secret)), &[("token", "")]).await;
        assert_eq!((status, error_of(&body)), (StatusCode::BAD_REQUEST, "invalid_request"), "an empty token is a missing one");
        assert_eq!(userinfo(&server, "").await, StatusCode::UNAUTHORIZED);
        for forged in [tampered.as_str(), unsigned.as_str(), id_token_as_access, "not.a.jwt"] {
            assert_eq!(userinfo(&server, forged).await, StatusCode::UNAUTHORIZED, "{forged}");
            let (status, body) = post_form(&server, "/introspect", Some((&rp.id, &rp.secret)), &[("token", forged)]).await;
            assert_eq!((status, body["active"].as_bool()), (StatusCode::OK, Some(false)), "{forged}");
        }
        let (_, body) = post_form(&server, "/introspect", Some((&rp.id, &rp.secret)), &[("token", access)]).await;
        assert_eq!(body["active"], true);
        assert_eq!(body["username"], "root");
        let other = register(&server, &admin, "other", json!({})).await;
        let (_, body) = post_form(&server, "/introspect", Some((&other.id, &other.secret)), &[("token", access)]).await;
        assert_eq!(body["active"], false, "another client's token is not disclosed");
        let (status, _) = post_form(&server, "/introspect", None, &[("token", access)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "introspection needs client authentication");
        // Revocation (RFC 7009): the access token stops at once; unknown tokens get 200 too.
        let (status, _) = post_form(&server, "/revoke", Some((&rp.id, &rp.secret)), &[("token", access)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(userinfo(&server, access).await, StatusCode::UNAUTHORIZED);
        let (status, _) = post_form(&server, "/revoke", Some((&rp.id, &rp.secret)), &[("token", "whatever")]).await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = post_form(&server, "/revoke", Some((&other.id, &other.secret)), &[("token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(body, Value::Null);
        let (_, body) = post_form(&server, "/introspect", Some((&rp.id, &rp.secret)), &[("token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(body["active"], true, "another client cannot revoke this client's refresh token");
    };

    private_key_jwt_clients_prove_themselves_with_a_signed_assertion => |server: TestServer| async move {
        use stackgate_oidc::{Jwks, KeyMaterial, SigningAlg, SigningKey, sign};
        let admin = server.bootstrap_admin().await;
        let material = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &material.pkcs8).unwrap();
        let jwks = Jwks { keys: vec![material.jwk.clone()] };
        let rp = register(&server, &admin, "keyed", json!({
            "auth_method": "private_key_jwt", "jwks": jwks, "grant_types": ["client_credentials"], "redirect_uris": []
        })).await;
        assert!(rp.secret.is_empty(), "no secret is generated for a private_key_jwt client");
        let now = SystemClock.unix();
        let assertion = |key: &SigningKey, aud: &str, exp: i64, jti: &str| {
            sign(key, "JWT", &json!({ "iss": "keyed", "sub": "keyed", "aud": aud, "exp": exp, "iat": now, "jti": jti })).unwrap()
        };
        let token_endpoint = server.url("/token");
        let call = |assertion: String| {
            let server = &server;
            async move {
                post_form(server, "/token", None, &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", &assertion),
                ]).await
            }
        };
        let good = assertion(&key, &token_endpoint, now + 60, "one");
        let (status, body) = call(good.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = call(good).await;
        assert_eq!((status, error_of(&body)), (StatusCode::UNAUTHORIZED, "invalid_client"), "a replayed assertion");
        let stranger = SigningKey::from_pkcs8(SigningAlg::ES256, &KeyMaterial::generate(SigningAlg::ES256).unwrap().pkcs8).unwrap();
        assert_eq!(call(assertion(&stranger, &token_endpoint, now + 60, "two")).await.0, StatusCode::UNAUTHORIZED, "signed by another key");
        assert_eq!(call(assertion(&key, &token_endpoint, now - 1, "three")).await.0, StatusCode::UNAUTHORIZED, "expired");
        assert_eq!(call(assertion(&key, "https://elsewhere.example/token", now + 60, "four")).await.0, StatusCode::UNAUTHORIZED, "for another provider");
        assert_eq!(call(assertion(&key, &token_endpoint, now + 3600, "five")).await.0, StatusCode::UNAUTHORIZED, "too long-lived");
        assert_eq!(call(assertion(&key, &server.base_url, now + 60, "six")).await.0, StatusCode::OK, "the issuer is an accepted audience");
        let no_aud = sign(&key, "JWT", &json!({ "iss": "keyed", "sub": "keyed", "exp": now + 60, "jti": "seven" })).unwrap();
        assert_eq!(call(no_aud).await.0, StatusCode::UNAUTHORIZED, "an assertion without aud could be replayed from anywhere");
        let (status, _) = post_form(&server, "/token", Some(("keyed", "guess")), &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "no secret works for it");
    };

    client_credentials_tokens_act_for_the_client => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let uuid_like = reqwest::Client::new().post(server.url("/api/v1/clients")).bearer_auth(&admin.token)
            .json(&json!({ "id": "00000000-0000-4000-8000-000000000001", "name": "x", "grant_types": ["client_credentials"] }))
            .send().await.unwrap();
        assert_eq!(uuid_like.status(), StatusCode::UNPROCESSABLE_ENTITY, "a client id must not pass for a user's sub");
        let rp = register(&server, &admin, "service", json!({ "grant_types": ["client_credentials"], "redirect_uris": [] })).await;
        let (status, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "client_credentials"), ("scope", "groups")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
        let (_, intro) = post_form(&server, "/introspect", Some((&rp.id, &rp.secret)), &[("token", body["access_token"].as_str().unwrap())]).await;
        assert_eq!(intro["active"], true);
        assert_eq!(intro["sub"], "service");
        let (_, body) = post_form(&server, "/token", Some((&rp.id, &rp.secret)), &[("grant_type", "client_credentials"), ("scope", "openid")]).await;
        assert_eq!(error_of(&body), "invalid_scope");
    };
}

async fn expiry_and_rotation(backend: Backend) {
    let clock = FixedClock::at(SystemClock.unix());
    let Some(server) = TestServer::start_with_clock(backend, &[], Arc::new(clock.clone())).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let rp = register(&server, &admin, "app", json!({})).await;
    let browser = server.browser();
    // An expired code.
    let (c, v) = code(&server, &browser, &rp).await;
    clock.advance(61);
    let (_, body) = exchange(&server, &rp, &c, &v).await;
    assert_eq!(error_of(&body), "invalid_grant", "codes live 60 s");
    // A token signed before rotation still validates after it ...
    let (c, v) = code(&server, &browser, &rp).await;
    let (_, tokens) = exchange(&server, &rp, &c, &v).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let before: Value = reqwest::get(server.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.keyring.rotate().await.unwrap();
    let after: Value = reqwest::get(server.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["keys"].as_array().unwrap().len(),
        6,
        "old and new keys are published"
    );
    assert_eq!(
        userinfo(&server, &access).await,
        StatusCode::OK,
        "old token still verifies"
    );
    let (c, v) = code(&server, &browser, &rp).await;
    let (_, fresh) = exchange(&server, &rp, &c, &v).await;
    let kid = |token: &str| -> Value {
        serde_json::from_slice::<Value>(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()["kid"]
            .clone()
    };
    assert_ne!(
        kid(&access),
        kid(fresh["access_token"].as_str().unwrap()),
        "new tokens use the new key"
    );
    // ... and once everything it signed has expired, the old key leaves the JWKS.
    clock.advance(stackgate_web::oidc::keyring::RETIRED_KEY_PUBLISHED_FOR + 1);
    server.keyring.reload().await.unwrap();
    let later: Value = reqwest::get(server.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&Value> = later["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids.len(), 3);
    assert!(
        before["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| !kids.contains(&&k["kid"]))
    );
    assert_eq!(userinfo(&server, &access).await, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

async fn scheduled_rotation(backend: Backend) {
    let clock = FixedClock::at(SystemClock.unix());
    let Some(server) = TestServer::start_with_clock(backend, &[], Arc::new(clock.clone())).await
    else {
        return;
    };
    let rotation = server.config.signing_key_rotation;
    let jwks = || async {
        reqwest::get(server.url("/jwks.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    assert!(
        !stackgate::server::rotate_keys_if_due(&server.keyring, &clock, rotation)
            .await
            .unwrap(),
        "fresh keys are not rotated"
    );
    assert_eq!(jwks().await, 3);
    clock.advance(rotation - 10);
    assert!(
        !stackgate::server::rotate_keys_if_due(&server.keyring, &clock, rotation)
            .await
            .unwrap()
    );
    clock.advance(10);
    assert!(
        stackgate::server::rotate_keys_if_due(&server.keyring, &clock, rotation)
            .await
            .unwrap(),
        "due after the interval"
    );
    assert_eq!(jwks().await, 6, "the previous keys stay published");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_key_rotation_on_sqlite() {
    scheduled_rotation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_key_rotation_on_postgres() {
    scheduled_rotation(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_key_rotation_on_sqlite() {
    expiry_and_rotation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_key_rotation_on_postgres() {
    expiry_and_rotation(Backend::Postgres).await;
}
