//! The admin API on both backends: the bad-input table of the foundation issue, and more.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use stackgate_testkit::{AdminClient, TestServer, on_both_backends};

struct Api<'a> {
    server: &'a TestServer,
    client: Client,
    token: String,
}

impl<'a> Api<'a> {
    fn new(server: &'a TestServer, admin: &AdminClient) -> Self {
        Self {
            server,
            client: Client::new(),
            token: admin.token.clone(),
        }
    }

    fn with_token(&self, token: &str) -> Self {
        Self {
            server: self.server,
            client: self.client.clone(),
            token: token.to_owned(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.server.url(&format!("/api/v1{path}")))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            stackgate_testkit::used_secrets_in(&body);
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status != StatusCode::NO_CONTENT {
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            if !status.is_success() {
                assert_eq!(
                    content_type, "application/problem+json",
                    "errors are problem documents"
                );
            }
        }
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        stackgate_testkit::used_secrets_in(&value);
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    async fn usernames(&self) -> Vec<String> {
        let (status, page) = self.get("/users?limit=500").await;
        assert_eq!(status, StatusCode::OK);
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    }
}

on_both_backends! {
    setup_link_works_once_and_the_first_admin_uses_the_api => |server: TestServer| async move {
        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        let admin = server.bootstrap_admin().await;
        // The session from the setup form is an admin session.
        let me = admin.browser.get(server.url("/api/v1/users/root")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["groups"], json!(["admins"]));
        // The token works too.
        let api = Api::new(&server, &admin);
        assert_eq!(api.usernames().await, ["root"]);
        // The link is spent.
        let again = reqwest::get(server.setup_link.clone().unwrap()).await.unwrap();
        assert_eq!(again.status(), StatusCode::GONE);
        assert!(again.text().await.unwrap().contains("no longer works"));
        server.stop().await;
    };

    duplicate_username_is_409_and_writes_nothing => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        let (status, _) = api.post("/users", json!({ "username": "bea", "email": "bea@example.org" })).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, problem) = api.post("/users", json!({ "username": "Bea", "email": "other@example.org" })).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["field"], "username");
        assert_eq!(problem["type"], "urn:stackgate:problem:conflict");
        assert_eq!(api.usernames().await, ["bea", "root"]);
        let (_, audit) = api.get("/audit?action=user.create&target=bea").await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 1, "only the successful create is audited");
    };

    unknown_group_is_404_and_creates_nothing => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        let (status, problem) = api.call("PUT", "/groups/nope/members/root", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["detail"], "group \"nope\" not found");
        let (status, _) = api.post("/users", json!({ "username": "bea", "groups": ["nope"] })).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(api.usernames().await, ["root"]);
        let (status, _) = api.get("/groups/00000000-0000-4000-8000-00000000dead").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    };

    malformed_input_is_400_with_the_field_named => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        let (status, problem) = api.post("/users", json!({ "email": "bea@example.org" })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "username", "a missing field is named");
        let (status, problem) = api.post("/users", json!({ "username": 5 })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "username");
        let (status, problem) = api.post("/users", json!({ "username": "bea", "groups": ["a", 7] })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "groups[1]");
        let (status, problem) = api.post("/users", json!({ "username": "bea", "colour": "red" })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "colour");
        let raw = api.client.post(server.url("/api/v1/users")).bearer_auth(&api.token)
            .header("content-type", "application/json").body("{\"username\": ").send().await.unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        let problem: Value = raw.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().starts_with("malformed JSON"), "{problem}");
        let form = api.client.post(server.url("/api/v1/users")).bearer_auth(&api.token)
            .body("username=bea").send().await.unwrap();
        assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, problem) = api.post("/users", json!({ "username": "bea", "email": "not-an-email" })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "email");
        let (status, problem) = api.post("/users", json!({ "username": "bea", "password": "short" })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "password");
        assert!(problem["detail"].as_str().unwrap().contains("at least 12 characters"));
        let (status, problem) = api.get("/users?limit=0").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "limit");
        let (status, problem) = api.get("/users?disabled=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "disabled");
        assert_eq!(api.usernames().await, ["root"], "nothing was written");
    };

    tokens_authenticate_and_only_admins_pass => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        api.post("/users", json!({ "username": "bea" })).await;
        let (status, created) = api.post("/tokens", json!({ "name": "bea's script", "user": "bea" })).await;
        assert_eq!(status, StatusCode::CREATED);
        let bea_token = created["token"].as_str().unwrap();
        assert!(bea_token.starts_with("sgt_"));
        let (status, problem) = api.with_token(bea_token).get("/users").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a non-admin token");
        assert!(problem["detail"].as_str().unwrap().contains("admins group"));
        let (status, _) = api.with_token("sgt_not-a-real-token").get("/users").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let anonymous = reqwest::get(server.url("/api/v1/users")).await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert!(anonymous.headers().contains_key("www-authenticate"));
        // Listing never shows secrets; revoking stops the token at once.
        let (_, tokens) = api.get("/tokens?user=bea").await;
        assert!(!tokens.to_string().contains(bea_token));
        let id = created["id"].as_str().unwrap();
        assert_eq!(api.call("DELETE", &format!("/tokens/{id}"), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(api.with_token(bea_token).get("/users").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(api.call("DELETE", &format!("/tokens/{id}"), None).await.0, StatusCode::CONFLICT);
        // Rights follow membership: making bea an admin makes her token an admin token ...
        let (_, created) = api.post("/tokens", json!({ "name": "second", "user": "bea", "expires_in_days": 30 })).await;
        let second = created["token"].as_str().unwrap();
        assert_eq!(api.with_token(second).get("/users").await.0, StatusCode::FORBIDDEN);
        api.call("PUT", "/groups/admins/members/bea", None).await;
        // ... and no admin can mint a token that acts as another admin.
        let (status, _) = api.post("/tokens", json!({ "name": "third", "user": "bea" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(api.with_token(second).get("/users").await.0, StatusCode::OK);
        assert_eq!(api.call("PATCH", "/users/bea", Some(json!({ "disabled": true }))).await.0, StatusCode::OK);
        assert_eq!(api.with_token(second).get("/users").await.0, StatusCode::UNAUTHORIZED);
    };

    deleting_a_group_leaves_no_memberships => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        let (status, group) = api.post("/groups", json!({ "name": "editors", "description": "Newsroom" })).await;
        assert_eq!(status, StatusCode::CREATED);
        let memberships_before = server.store.count_memberships().await.unwrap();
        let (status, _) = api.post("/users", json!({ "username": "bea", "groups": ["editors", "editors"] })).await;
        assert_eq!(status, StatusCode::CREATED, "a group named twice is joined once");
        api.post("/users", json!({ "username": "carla" })).await;
        assert_eq!(api.call("PUT", "/groups/editors/members/carla", None).await.0, StatusCode::NO_CONTENT);
        let (_, members) = api.get("/groups/editors/members").await;
        assert_eq!(members["items"].as_array().unwrap().len(), 2);
        let (_, filtered) = api.get("/users?group=editors").await;
        assert_eq!(filtered["items"].as_array().unwrap().len(), 2);
        let id = group["id"].as_str().unwrap();
        assert_eq!(api.call("DELETE", &format!("/groups/{id}"), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(api.get("/groups/editors").await.0, StatusCode::NOT_FOUND);
        assert_eq!(server.store.count_memberships().await.unwrap(), memberships_before, "no orphaned memberships");
        for user in ["bea", "carla"] {
            let (_, shown) = api.get(&format!("/users/{user}")).await;
            assert_eq!(shown["groups"], json!([]), "{user} keeps no membership");
        }
        // A new group of the same name starts empty.
        api.post("/groups", json!({ "name": "editors" })).await;
        let (_, group) = api.get("/groups/editors").await;
        assert_eq!(group["member_count"], 0);
        // Built-in groups stay.
        assert_eq!(api.call("DELETE", "/groups/admins", None).await.0, StatusCode::CONFLICT);
    };

    the_last_admin_is_protected => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        let (status, problem) = api.call("DELETE", "/users/root", None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(problem["detail"].as_str().unwrap().contains("last enabled admin"));
        assert_eq!(api.call("DELETE", "/groups/admins/members/root", None).await.0, StatusCode::CONFLICT);
        assert_eq!(api.call("PATCH", "/users/root", Some(json!({ "disabled": true }))).await.0, StatusCode::CONFLICT);
    };

    users_are_listed_in_pages_and_filtered => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        for name in ["ana", "bea", "carla", "dario"] {
            api.post("/users", json!({ "username": name, "display_name": format!("{name} Example") })).await;
        }
        let (_, first) = api.get("/users?limit=2").await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let cursor = first["next_cursor"].as_str().unwrap();
        let (_, second) = api.get(&format!("/users?limit=2&cursor={cursor}")).await;
        assert_eq!(second["items"][0]["username"], "carla");
        let (_, found) = api.get("/users?q=DARIO").await;
        assert_eq!(found["items"].as_array().unwrap().len(), 1);
        api.call("PATCH", "/users/ana", Some(json!({ "disabled": true, "email": "ana@example.org" }))).await;
        let (_, disabled) = api.get("/users?disabled=true").await;
        assert_eq!(disabled["items"][0]["username"], "ana");
        let (_, cleared) = api.call("PATCH", "/users/ana", Some(json!({ "email": null }))).await;
        assert_eq!(cleared["email"], Value::Null);
        assert_eq!(cleared["disabled"], true, "an absent field is left as it is");
    };

    admin_changes_are_audited_with_actor_and_source => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let api = Api::new(&server, &admin);
        api.post("/users", json!({ "username": "bea" })).await;
        api.call("PUT", "/users/bea/password", Some(json!({ "password": "another long passphrase" }))).await;
        let (_, page) = api.get("/audit?target=bea").await;
        let items = page["items"].as_array().unwrap();
        let actions: Vec<_> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["user.set_password", "user.create"]);
        assert_eq!(items[0]["actor"], "root");
        assert_eq!(items[0]["source_ip"], "127.0.0.1");
        assert!(!page.to_string().contains("another long passphrase"), "no secret in the audit log");
        let (_, setup) = api.get("/audit?action=setup.complete").await;
        assert_eq!(setup["items"][0]["actor"], "setup");
        let (status, _) = api.get("/audit?since=yesterday").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, recent) = api.get("/audit?since=2000-01-01T00:00:00Z&action=user.").await;
        assert_eq!(recent["items"].as_array().unwrap().len(), 2);
    };

    cookie_sessions_refuse_cross_site_changes => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let evil = admin.browser.post(server.url("/api/v1/groups"))
            .header("origin", "https://evil.example").json(&json!({ "name": "evil" })).send().await.unwrap();
        assert_eq!(evil.status(), StatusCode::FORBIDDEN);
        let fetch = admin.browser.post(server.url("/api/v1/groups"))
            .header("sec-fetch-site", "cross-site").json(&json!({ "name": "evil" })).send().await.unwrap();
        assert_eq!(fetch.status(), StatusCode::FORBIDDEN);
        let own = admin.browser.post(server.url("/api/v1/groups"))
            .header("origin", server.base_url.as_str()).json(&json!({ "name": "fine" })).send().await.unwrap();
        assert_eq!(own.status(), StatusCode::CREATED);
        let (_, groups) = Api::new(&server, &admin).get("/groups").await;
        assert!(!groups.to_string().contains("evil"));
    };

    metrics_and_health_are_exposed => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        Api::new(&server, &admin).get("/users").await;
        reqwest::get(server.url("/nowhere")).await.unwrap();
        let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"stackgate_http_requests_total{method="GET",route="/api/v1/users",status="200"} 1"#), "{text}");
        assert!(text.contains("stackgate_http_request_duration_seconds_bucket"));
        assert!(text.contains(r#"stackgate_db_pool_connections{state="max"} 8"#), "{text}");
        assert!(!text.contains("/nowhere"), "unknown paths do not become labels");
        let health: Value = reqwest::get(server.url("/healthz")).await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "alive");
    };
}
