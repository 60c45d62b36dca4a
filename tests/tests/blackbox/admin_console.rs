//! The admin console and the user portal over HTTP: invitations (emailed through a real SMTP
//! server, aiosmtpd) and password-reset links, second-factor resets, sessions, the audit
//! export, and every console form refusing bad input without changing anything.

use crate::proxy::{PASSWORD, api};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stackgate_testkit::{AdminClient, SmtpSink, TestServer, hidden_field};

async fn page(browser: &reqwest::Client, url: String) -> (StatusCode, String) {
    let response = browser.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Posts a form the way the page would (the browser's CSRF cookie and token, same origin).
async fn post(
    server: &TestServer,
    browser: &reqwest::Client,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    for (name, value) in fields {
        if name.contains("password") || *name == "code" {
            stackgate_testkit::used_secret(value);
        }
    }

    let response = browser
        .post(server.url(path))
        .header("origin", server.base_url.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), location)
}

async fn sign_in(
    server: &TestServer,
    username: &str,
    password: &str,
) -> (StatusCode, reqwest::Client) {
    let browser = server.browser();
    let (_, login) = page(&browser, server.url("/login")).await;
    let (status, _, _) = post(
        server,
        &browser,
        "/login",
        &hidden_field(&login, "csrf"),
        &[
            ("username", username),
            ("password", password),
            ("return_to", "/"),
        ],
    )
    .await;
    (status, browser)
}

async fn signed_in(server: &TestServer, browser: &reqwest::Client) -> bool {
    browser.get(server.url("/")).send().await.unwrap().status() == StatusCode::OK
}

async fn actions(server: &TestServer, admin: &AdminClient, target: &str) -> Vec<String> {
    let (_, audit) = api(
        server,
        admin,
        Method::GET,
        &format!("/audit?target={target}&limit=500"),
        None,
    )
    .await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// Sets a password through a link page; returns the answer to the form.
async fn use_link(
    server: &TestServer,
    browser: &reqwest::Client,
    link: &str,
    password: &str,
    again: &str,
) -> (StatusCode, String, Option<String>) {
    let (status, html) = page(browser, link.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let token = hidden_field(&html, "token");
    post(
        server,
        browser,
        "/account/link",
        &hidden_field(&html, "csrf"),
        &[
            ("token", &token),
            ("password", password),
            ("password_confirm", again),
        ],
    )
    .await
}

async fn invitations_by_email(backend: stackgate_testkit::Backend) {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let Some(server) =
        TestServer::start_with(backend, &[("STACKGATE_SMTP_URL", url.as_str())]).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/users",
        Some(json!({
            "username": "maya", "email": "maya@example.org", "display_name": "Maya Okafor",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, sent) = api(
        &server,
        &admin,
        Method::POST,
        "/users/maya/invitation",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["emailed_to"], "maya@example.org");
    assert!(
        sent.get("url").is_none(),
        "an emailed link is not shown as well: {sent}"
    );

    let mail = smtp.wait_for(1).await;
    assert!(
        mail.header("to").unwrap().contains("maya@example.org"),
        "{}",
        mail.raw
    );
    assert!(
        mail.header("subject").unwrap().contains("invited"),
        "{}",
        mail.raw
    );
    let link = mail
        .link_containing("/account/link?token=")
        .expect("a link in the email");
    assert!(link.starts_with(&server.base_url), "{link}");
    assert!(
        mail.body().contains("Your username is maya"),
        "{}",
        mail.body()
    );

    // Bad passwords are refused on the page, and the link still works afterwards.
    let browser = server.browser();
    let (status, html, _) = use_link(
        &server,
        &browser,
        &link,
        PASSWORD,
        "something else entirely",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("not the same"), "{html}");
    let (status, html, _) = use_link(&server, &browser, &link, "short", "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Password"), "{html}");

    let (status, _, location) = use_link(&server, &browser, &link, PASSWORD, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account/security"));
    assert!(
        signed_in(&server, &browser).await,
        "the invited person is signed in"
    );

    // Once only.
    let (status, _) = page(&server.browser(), link.clone()).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = sign_in(&server, "maya", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the chosen password signs in"
    );
    let done = actions(&server, &admin, "maya").await;
    for action in ["user.create", "user.invite", "user.invitation_accepted"] {
        assert!(
            done.contains(&action.to_owned()),
            "{action} not in {done:?}"
        );
    }

    // No address: the link comes back to the admin with the reason.
    api(
        &server,
        &admin,
        Method::POST,
        "/users",
        Some(json!({ "username": "noor" })),
    )
    .await;
    let (status, sent) = api(
        &server,
        &admin,
        Method::POST,
        "/users/noor/invitation",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert!(
        sent["url"]
            .as_str()
            .unwrap()
            .contains("/account/link?token="),
        "{sent}"
    );
    assert!(
        sent["not_emailed"]
            .as_str()
            .unwrap()
            .contains("no email address"),
        "{sent}"
    );
    assert_eq!(smtp.messages().len(), 1, "nothing was sent for noor");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_by_email_set_a_password_once_sqlite() {
    invitations_by_email(stackgate_testkit::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_by_email_set_a_password_once_postgres() {
    invitations_by_email(stackgate_testkit::Backend::Postgres).await;
}

stackgate_testkit::on_both_backends! {
    password_reset_links_sign_out_everywhere => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "bob", &["staff"]).await;
        let (_, bob) = sign_in(&server, "bob", PASSWORD).await;
        assert!(signed_in(&server, &bob).await);

        let (status, sent) = api(&server, &admin, Method::POST, "/users/bob/password-reset", None).await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        let link = sent["url"].as_str().expect("no mail server: the link is returned").to_owned();
        // A newer link replaces the older one.
        let (_, newer) = api(&server, &admin, Method::POST, "/users/bob/password-reset", None).await;
        let newer = newer["url"].as_str().unwrap().to_owned();
        assert_eq!(page(&server.browser(), link).await.0, StatusCode::GONE);

        let new_password = "another long password 2";
        let (status, _, location) = use_link(&server, &server.browser(), &newer, new_password, new_password).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/login"), "a reset signs in again, second factor and all");
        assert!(!signed_in(&server, &bob).await, "every session ended");
        assert_eq!(sign_in(&server, "bob", PASSWORD).await.0, StatusCode::UNAUTHORIZED, "the old password is gone");
        assert_eq!(sign_in(&server, "bob", new_password).await.0, StatusCode::SEE_OTHER);
        assert_eq!(page(&server.browser(), newer).await.0, StatusCode::GONE, "once only");
        let done = actions(&server, &admin, "bob").await;
        assert!(done.contains(&"user.password_reset".to_owned()), "{done:?}");

        // A disabled account gets no link, and a link it had stops working.
        let (_, pending) = api(&server, &admin, Method::POST, "/users/bob/password-reset", None).await;
        let pending = pending["url"].as_str().unwrap().to_owned();
        api(&server, &admin, Method::PATCH, "/users/bob", Some(json!({ "disabled": true }))).await;
        assert_eq!(page(&server.browser(), pending).await.0, StatusCode::GONE);
        let (status, body) = api(&server, &admin, Method::POST, "/users/bob/invitation", None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        server.stop().await;
    };

    resetting_second_factors_removes_them_and_signs_out => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "cy", &["staff"]).await;
        let cy = server.store.find_user("cy").await.unwrap().unwrap();
        let codes = stackgate_identity::new_recovery_codes().unwrap();
        let digests: Vec<String> = codes
            .iter()
            .map(|c| stackgate_identity::recovery_code_digest(cy.id, c).unwrap())
            .collect();
        let entry = stackgate_identity::Actor::system("test").entry("user.recovery_codes", stackgate_identity::Target::System);
        server.store.replace_recovery_codes(cy.id, &digests, &entry).await.unwrap();
        let (_, factors) = api(&server, &admin, Method::GET, "/users/cy/second-factors", None).await;
        assert_eq!(factors["recovery_codes_left"], 10, "{factors}");
        let (status, cy_browser) = sign_in(&server, "cy", PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        // With recovery codes, the password alone is not a sign-in: finish it with a code.
        let (_, second) = page(&cy_browser, server.url("/login/second-factor")).await;
        let (status, _, _) = post(&server, &cy_browser, "/login/second-factor", &hidden_field(&second, "csrf"),
            &[("code", codes[0].as_str())]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(signed_in(&server, &cy_browser).await);
        let (_, sessions) = api(&server, &admin, Method::GET, "/users/cy/sessions", None).await;
        assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
        assert!(sessions[0]["amr"].as_array().unwrap().iter().any(|m| m == "pwd"), "{sessions}");

        let (status, removed) = api(&server, &admin, Method::POST, "/users/cy/reset-mfa", None).await;
        assert_eq!(status, StatusCode::OK, "{removed}");
        assert_eq!(removed["recovery_codes"], 10, "used or not: {removed}");
        let (_, factors) = api(&server, &admin, Method::GET, "/users/cy/second-factors", None).await;
        assert_eq!(factors, json!({ "totp": false, "recovery_codes_left": 0, "devices": [] }));
        assert!(!signed_in(&server, &cy_browser).await, "signed out everywhere");
        let (_, sessions) = api(&server, &admin, Method::GET, "/users/cy/sessions", None).await;
        assert_eq!(sessions, json!([]));
        assert!(actions(&server, &admin, "cy").await.contains(&"user.reset_mfa".to_owned()));
        server.stop().await;
    };

    the_audit_log_exports_as_csv_and_json_lines => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "ana", &[]).await;
        let export = |query: &'static str| {
            let admin = admin.clone();
            let url = server.url(&format!("/api/v1/audit/export?{query}"));
            async move {
                let response = reqwest::Client::new().get(url).bearer_auth(&admin.token).send().await.unwrap();
                let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
                (response.status(), kind, response.text().await.unwrap())
            }
        };
        let (status, kind, csv) = export("format=csv&action=user.").await;
        assert_eq!(status, StatusCode::OK, "{csv}");
        assert_eq!(kind.as_deref(), Some("text/csv; charset=utf-8"));
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("id,at,actor,actor_id,action,target_type,target,target_id,source_ip,detail"));
        let rows: Vec<&str> = lines.collect();
        assert!(rows.iter().all(|r| r.contains(",user.")), "only user actions: {rows:?}");
        assert!(rows.iter().any(|r| r.contains(",user.create,user,ana,")), "{rows:?}");

        let (status, kind, jsonl) = export("format=jsonl&action=user.create").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind.as_deref(), Some("application/jsonl"));
        let records: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!records.is_empty());
        assert!(records.iter().all(|r| r["action"] == "user.create"), "{records:?}");

        let (status, _, body) = export("format=xml").await;
        assert!(status.is_client_error(), "{status} {body}");
        // People who are not admins get nothing.
        let (_, ana) = sign_in(&server, "ana", PASSWORD).await;
        let refused = ana.get(server.url("/api/v1/audit/export?format=csv")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        server.stop().await;
    };

    console_forms_refuse_bad_input_and_change_nothing => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "ana", &["staff"]).await;
        let browser = &admin.browser;
        let (status, html) = page(browser, server.url("/admin/users")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let csrf = hidden_field(&html, "csrf");
        let users = || async { server.store.count_users().await.unwrap() };
        let before = users().await;
        let long = "a".repeat(65);
        let script = "<script>alert(1)</script>";
        for (username, email, name) in [
            ("", "", ""),
            (long.as_str(), "", ""),
            (script, "", ""),
            ("root", "", ""),
            ("fine", "not an email", ""),
            ("fine", "", &"n".repeat(129)),
            ("fine", "", script),
        ] {
            let (status, html, _) = post(&server, browser, "/admin/users", &csrf,
                &[("username", username), ("email", email), ("display_name", name), ("groups", "staff")]).await;
            if name == script {
                // A display name is free text: stored, and shown escaped, never as markup.
                assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
                let fine = server.store.find_user("fine").await.unwrap().unwrap();
                let (_, shown) = page(browser, server.url(&format!("/admin/users/{}", fine.id))).await;
                assert!(!shown.contains(script) && shown.contains("&lt;script&gt;"), "escaped");
                continue;
            }
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{username:?} {email:?}: {html}");
            assert!(html.contains("id=\"form-error\""), "an inline message for {username:?}");
            assert!(!html.contains(script), "no markup from input");
            assert_eq!(users().await, before, "nothing created for {username:?}");
        }
        // An unknown group is refused before anything is created.
        let (status, html, _) = post(&server, browser, "/admin/users", &csrf, &[("username", "zed"), ("groups", "nope")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(server.store.find_user("zed").await.unwrap().is_none());

        // Groups.
        let groups = || async { server.store.list_groups(None, None, 500).await.unwrap().groups.len() };
        let before = groups().await;
        for name in ["", long.as_str(), script, "admins", "staff"] {
            let (status, html, _) = post(&server, browser, "/admin/groups", &csrf, &[("name", name)]).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {html}");
            assert!(html.contains("id=\"form-error\"") && !html.contains(script));
        }
        assert_eq!(groups().await, before);
        let staff = server.store.find_group("staff").await.unwrap().unwrap();
        let (status, _, _) = post(&server, browser, &format!("/admin/groups/{}/settings", staff.id), &csrf,
            &[("name", "staff"), ("mfa_policy", "bogus")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _, _) = post(&server, browser, &format!("/admin/groups/{}/add-member", staff.id), &csrf,
            &[("username", "nobody")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _, _) = post(&server, browser, &format!("/admin/groups/{}/delete", staff.id), &csrf, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "deleting needs the confirmation box");
        assert!(server.store.find_group("staff").await.unwrap().is_some());
        let admins = server.store.find_group("admins").await.unwrap().unwrap();
        let (status, html, _) = post(&server, browser, &format!("/admin/groups/{}/delete", admins.id), &csrf, &[("confirm", "yes")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");

        // People: confirmations, the last admin, and a change that works.
        let ana = server.store.find_user("ana").await.unwrap().unwrap();
        let root = server.store.find_user("root").await.unwrap().unwrap();
        for action in ["delete", "reset-mfa"] {
            let (status, _, _) = post(&server, browser, &format!("/admin/users/{}/{action}", ana.id), &csrf, &[]).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action} needs the confirmation box");
        }
        assert!(server.store.find_user("ana").await.unwrap().is_some());
        let (status, html, _) = post(&server, browser, &format!("/admin/users/{}/delete", root.id), &csrf, &[("confirm", "yes")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the last admin stays: {html}");
        assert!(html.contains("last enabled admin"), "{html}");
        let (status, _, _) = post(&server, browser, &format!("/admin/users/{}/details", ana.id), &csrf,
            &[("display_name", "Ana María"), ("email", "not-an-email")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(server.store.get_user(ana.id).await.unwrap().display_name, ana.display_name);
        let (status, _, location) = post(&server, browser, &format!("/admin/users/{}/details", ana.id), &csrf,
            &[("display_name", "Ana María"), ("email", "ana@example.org")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.unwrap(), format!("/admin/users/{}?done=saved", ana.id));
        assert_eq!(server.store.get_user(ana.id).await.unwrap().display_name, "Ana María");

        // Forged and foreign requests.
        let (status, _, _) = post(&server, browser, "/admin/users", "forged", &[("username", "eve")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let cross = browser.post(server.url("/admin/users")).header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str()), ("username", "eve")]).send().await.unwrap();
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
        assert!(server.store.find_user("eve").await.unwrap().is_none());
        let (_, ana_browser) = sign_in(&server, "ana", PASSWORD).await;
        for path in ["/admin/users", "/admin/groups", "/admin/audit", &format!("/admin/users/{}", root.id)] {
            assert_eq!(page(&ana_browser, server.url(path)).await.0, StatusCode::FORBIDDEN, "{path}");
        }
        let anonymous = server.browser().get(server.url("/admin/users")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
        assert_eq!(anonymous.headers()["location"], "/login?return_to=%2Fadmin%2Fusers");

        // The audit page filters, and refuses a bad date with a message.
        let (status, html) = page(browser, server.url("/admin/audit?target=ana")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("user.update") && !html.contains("setup.complete"), "{html}");
        let (status, html) = page(browser, server.url("/admin/audit?since=yesterday")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("YYYY-MM-DD"));
        server.stop().await;
    };

    people_see_and_end_their_own_sessions => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "dee", &["staff"]).await;
        let (_, laptop) = sign_in(&server, "dee", PASSWORD).await;
        let (_, phone) = sign_in(&server, "dee", PASSWORD).await;
        let (status, html) = page(&laptop, server.url("/account/sessions")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(html.matches("/end\"").count(), 2, "{html}");
        assert!(html.contains("this browser"));
        let (_, sessions) = api(&server, &admin, Method::GET, "/users/dee/sessions", None).await;
        let ids: Vec<String> = sessions.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
        let csrf = hidden_field(&html, "csrf");
        // Someone else's session id ends nothing.
        let (_, root_sessions) = api(&server, &admin, Method::GET, "/users/root/sessions", None).await;
        let root_id = root_sessions[0]["id"].as_str().unwrap();
        let (status, _, _) = post(&server, &laptop, &format!("/account/sessions/{root_id}/end"), &csrf, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(signed_in(&server, &admin.browser).await, "the admin's session is not dee's to end");
        // Which one is the phone: the laptop's page marks its own.
        let (_, laptop_page) = page(&laptop, server.url("/account/sessions")).await;
        let phone_id = ids.iter().find(|id| {
            let row = laptop_page.split(&format!("/account/sessions/{id}/end")).next().unwrap();
            !row.rsplit("<tr").next().unwrap().contains("this browser")
        }).unwrap();
        let (status, _, _) = post(&server, &laptop, &format!("/account/sessions/{phone_id}/end"), &csrf, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(!signed_in(&server, &phone).await, "the phone is signed out");
        assert!(signed_in(&server, &laptop).await, "the laptop is not");
        server.stop().await;
    };
}

/// Demo's manifest as another app, `notes`, that the edge protects: the edge's policy decides
/// who reaches it.
fn notes_manifest() -> String {
    include_str!("../../../charts/catalog/demo.yaml")
        .replace("id: demo", "id: notes")
        .replace("name: Demo app", "name: Notes")
        .replace("protect: false", "protect: true")
}

async fn console_in_chromium(backend: stackgate_testkit::Backend) {
    let smtp = SmtpSink::start().await;
    let catalog = tempfile::tempdir().unwrap();
    std::fs::write(catalog.path().join("notes.yaml"), notes_manifest()).unwrap();
    let settings = [
        ("STACKGATE_ISSUER", "http://localhost:{port}".to_owned()),
        ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0".to_owned()),
        ("STACKGATE_SMTP_URL", smtp.url()),
        (
            "STACKGATE_APPS_CATALOG_DIR",
            catalog.path().display().to_string(),
        ),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Some(server) = TestServer::start_with(backend, &settings).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    for group in ["newsroom", "finance"] {
        let (status, body) = api(
            &server,
            &admin,
            Method::POST,
            "/groups",
            Some(json!({ "name": group })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut notes_url = String::new();
    for (app, group) in [("demo", "newsroom"), ("notes", "finance")] {
        let (status, body) = api(
            &server,
            &admin,
            Method::POST,
            "/apps",
            Some(json!({ "app": app, "user_groups": [group] })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let view = crate::apps::installed(&server, &admin, app).await;
        assert_eq!(view["status"], "installed", "{view}");
        notes_url = format!("{}/", view["base_url"].as_str().unwrap());
    }
    let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-artifacts/console")
        .join(server.backend.name());
    let maildir = smtp.maildir().display().to_string();
    let result = crate::browser::script_with(
        "admin.mjs",
        &server,
        "root",
        &shots,
        &[&maildir, &notes_url],
    )
    .await;
    let text = |key: &str| result[key].as_str().unwrap_or_default().to_owned();
    assert!(
        text("invited").contains("emailed to maya@example.org"),
        "{result}"
    );
    assert_eq!(result["launcher_newsroom"], json!(["Demo app"]), "{result}");
    assert_eq!(
        result["notes_before"], 403,
        "the edge refuses Notes to the newsroom: {result}"
    );
    assert_eq!(result["sessions_rows"], 1, "{result}");
    assert!(text("devices").contains("Maya's phone"), "{result}");
    assert!(
        text("groups_after").contains("finance") && !text("groups_after").contains("newsroom"),
        "{result}"
    );
    assert_eq!(
        result["launcher_finance"],
        json!(["Notes"]),
        "the launcher follows the move: {result}"
    );
    assert_eq!(result["notes_after"], 200, "and so does the edge: {result}");
    assert_eq!(
        result["narrow_state_label"], "\"State: \"",
        "a phone shows the column's name: {result}"
    );
    assert_eq!(result["after_sign_out"], "/login", "{result}");
    assert_eq!(result["notes_after_sign_out"], "/login", "{result}");
    for action in [
        "user.invite",
        "user.invitation_accepted",
        "webauthn.register",
        "user.sign_out",
    ] {
        assert!(
            text("audit").contains(action),
            "{action} missing from the audit page: {result}"
        );
    }
    // Membership changes are recorded against the group, naming the person.
    let (_, moves) = api(&server, &admin, Method::GET, "/audit?action=group.", None).await;
    let moves: Vec<(String, String)> = moves["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["user"] == "maya")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("group.add_member".to_owned(), "finance".to_owned()),
            ("group.remove_member".to_owned(), "newsroom".to_owned()),
        ]
    );
    assert!(text("generated_policy").contains("notes"), "{result}");
    assert_eq!(result["csv_status"], 200);
    assert_eq!(result["csv_has_invite"], true);
    // Maya's passkey is a real WebAuthn credential, stored for her.
    let maya = server.store.find_user("maya").await.unwrap().unwrap();
    assert_eq!(server.store.credentials_of(maya.id).await.unwrap().len(), 1);
    for app in ["demo", "notes"] {
        let (status, _) = api(
            &server,
            &admin,
            Method::DELETE,
            &format!("/apps/{app}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_invites_moves_and_signs_out_in_chromium_sqlite() {
    console_in_chromium(stackgate_testkit::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_invites_moves_and_signs_out_in_chromium_postgres() {
    console_in_chromium(stackgate_testkit::Backend::Postgres).await;
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];

    admins_edit_app_access_and_the_policy_from_the_console => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        api(&server, &admin, Method::POST, "/groups", Some(json!({ "name": "staff" }))).await;
        let (status, body) = api(&server, &admin, Method::POST, "/apps", Some(json!({ "app": "demo" }))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        crate::apps::installed(&server, &admin, "demo").await;
        let browser = &admin.browser;
        let (status, html) = page(browser, server.url("/admin/apps/demo")).await;
        assert_eq!(status, StatusCode::OK);
        let csrf = hidden_field(&html, "csrf");

        // An unknown group is refused on the page, and access stays as it was.
        let (status, html, _) = post(&server, browser, "/admin/apps/demo/access", &csrf,
            &[("user_groups", "staff nope"), ("admin_groups", "")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("id=\"form-error\"") && html.contains("nope"), "{html}");
        let (_, app) = api(&server, &admin, Method::GET, "/apps/demo", None).await;
        assert_eq!(app["user_groups"], json!([]), "{app}");
        let (status, _, location) = post(&server, browser, "/admin/apps/demo/access", &csrf,
            &[("user_groups", "staff"), ("admin_groups", "")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/admin/apps/demo?done=access"));
        let (_, app) = api(&server, &admin, Method::GET, "/apps/demo", None).await;
        assert_eq!(app["user_groups"], json!(["staff"]), "{app}");

        // The policy: a rule that does not check is refused with its line, and nothing changes.
        let (status, html) = page(browser, server.url("/admin/policy")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let before = server.store.access_policy().await.unwrap();
        let (status, html, _) = post(&server, browser, "/admin/policy", &csrf,
            &[("text", "permit(principal, action, resource)\r\nwhen { context.nope == 1 };")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("id=\"problems\"") && html.contains("line 2"), "{html}");
        assert!(html.contains("context.nope"), "the text comes back to be fixed");
        assert_eq!(server.store.access_policy().await.unwrap(), before);
        let rule = "forbid(principal, action, resource)\nwhen { context.path like \"/secret*\" };";
        let (status, _, location) = post(&server, browser, "/admin/policy", &csrf, &[("text", rule)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/admin/policy?saved=1"));
        assert_eq!(server.store.access_policy().await.unwrap(), rule);
        let (status, _) = api(&server, &admin, Method::DELETE, "/apps/demo", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        server.stop().await;
    };
}

/// Sends the settings form as a browser does (multipart, with the CSRF token).
async fn save_settings(
    server: &TestServer,
    browser: &reqwest::Client,
    csrf: &str,
    fields: &[(&str, &str)],
    logo: Option<Vec<u8>>,
) -> (StatusCode, String) {
    let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_owned());
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    if let Some(bytes) = logo {
        form = form.part(
            "logo",
            reqwest::multipart::Part::bytes(bytes).file_name("logo.png"),
        );
    }
    let response = browser
        .post(server.url("/admin/settings"))
        .header("origin", server.base_url.as_str())
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

stackgate_testkit::on_both_backends! {
    settings_change_the_pages_and_the_policy_at_once => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "ana", &["staff"]).await;
        let (_, ana) = sign_in(&server, "ana", PASSWORD).await;
        assert!(signed_in(&server, &ana).await);
        let browser = &admin.browser;
        let (status, html) = page(browser, server.url("/admin/settings")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let csrf = hidden_field(&html, "csrf");
        let good = [
            ("organisation_name", "Example Newsroom"),
            ("brand_colour", "#AA3300"),
            ("idle_minutes", "60"),
            ("lifetime_hours", "24"),
            ("mfa_policy", "optional"),
        ];
        // Each bad value is refused with a message, and nothing changes.
        for (field, bad) in [
            ("organisation_name", ""),
            ("brand_colour", "red; } body { display: none"),
            ("idle_minutes", "1"),
            ("lifetime_hours", "0"),
            ("idle_minutes", "6000"),
            ("mfa_policy", "strict"),
        ] {
            let fields: Vec<(&str, &str)> = good.iter().map(|&(k, v)| if k == field { (k, bad) } else { (k, v) }).collect();
            let (status, html) = save_settings(&server, browser, &csrf, &fields, None).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={bad}: {html}");
            assert!(html.contains("id=\"form-error\""), "{html}");
        }
        let (status, html) = save_settings(&server, browser, &csrf, &good, Some(b"GIF89a....".to_vec())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("PNG, JPEG, WebP or SVG"), "{html}");
        assert!(server.store.settings().await.unwrap().is_empty(), "nothing was stored");
        let (status, _) = save_settings(&server, browser, "forged", &good, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let (status, _) = save_settings(&server, browser, &csrf, &good, Some(png.clone())).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, home) = page(&ana, server.url("/")).await;
        assert!(home.contains("Example Newsroom") && home.contains("/assets/logo"), "{home}");
        let (_, css) = page(&ana, server.url("/assets/brand.css")).await;
        assert!(css.contains("--accent: #aa3300"), "{css}");
        let logo = ana.get(server.url("/assets/logo")).send().await.unwrap();
        assert_eq!(logo.headers()["content-type"], "image/png");
        assert_eq!(logo.bytes().await.unwrap().to_vec(), png);

        // Removing the logo.
        let mut no_logo = good.to_vec();
        no_logo.push(("remove_logo", "yes"));
        let (status, html) = save_settings(&server, browser, &csrf, &no_logo, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(ana.get(server.url("/assets/logo")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let stored = server.store.settings().await.unwrap();
        assert_eq!(stored["organisation_name"], "Example Newsroom");
        assert!(!stored.contains_key("organisation_logo"));
        // Only admins.
        assert_eq!(page(&ana, server.url("/admin/settings")).await.0, StatusCode::FORBIDDEN);
        // A stricter global policy applies to sessions already open: ana must add a factor.
        let mut strict = good.to_vec();
        strict[4] = ("mfa_policy", "required");
        let (status, _) = save_settings(&server, browser, &csrf, &strict, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let home = ana.get(server.url("/")).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::SEE_OTHER);
        assert_eq!(home.headers()["location"], "/account/security");
        // The admin, with a password only, is led to add a factor as well.
        let console = browser.get(server.url("/admin/settings")).send().await.unwrap();
        assert_eq!(console.headers()["location"], "/account/security");
        let (_, audit) = api(&server, &admin, Method::GET, "/audit?action=settings.update", None).await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 3, "{audit}");
        assert_eq!(audit["items"][0]["detail"]["mfa_policy"], "required");
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends! {
    admins_register_other_apps_for_sign_in => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let browser = &admin.browser;
        let (status, html) = page(browser, server.url("/admin/clients")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let csrf = hidden_field(&html, "csrf");
        let before = server.store.list_clients().await.unwrap().len();
        // A redirect address that is not absolute, or plain HTTP to another host, is refused.
        for uris in ["", "not a url", "http://wiki.example.org/callback", "https://wiki.example.org/cb#frag"] {
            let (status, html, _) = post(&server, browser, "/admin/clients", &csrf,
                &[("name", "Wiki"), ("redirect_uris", uris), ("kind", "confidential")]).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uris:?}: {html}");
            assert!(html.contains("id=\"form-error\""), "{html}");
        }
        assert_eq!(server.store.list_clients().await.unwrap().len(), before);
        let (status, html, _) = post(&server, browser, "/admin/clients", &csrf,
            &[("name", "Wiki"), ("redirect_uris", "https://wiki.example.org/callback\r\n"), ("kind", "confidential"), ("first_party", "yes")]).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let id = stackgate_testkit::decode_entities(html.split("id=\"client-id\">").nth(1).unwrap().split('<').next().unwrap());
        let secret = html.split("id=\"client-secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
        assert!(secret.starts_with("sgs_"), "{secret}");
        let stored = server.store.get_client(&id).await.unwrap().unwrap();
        assert_eq!(stored.client.redirect_uris, ["https://wiki.example.org/callback"]);
        assert!(stored.client.first_party);
        assert_ne!(stored.secret_hash.as_deref(), Some(secret.as_str()), "only a digest is kept");
        // The secret is not shown again.
        let (_, listed) = page(browser, server.url("/admin/clients")).await;
        assert!(listed.contains(&id) && !listed.contains(&secret));
        // A new secret replaces the old; removing needs the box ticked.
        let (status, html, _) = post(&server, browser, &format!("/admin/clients/{id}/secret"), &csrf, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains(&secret) && html.contains("id=\"client-secret\">sgs_"));
        let (status, _, _) = post(&server, browser, &format!("/admin/clients/{id}/delete"), &csrf, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(server.store.get_client(&id).await.unwrap().is_some());
        let (status, _, location) = post(&server, browser, &format!("/admin/clients/{id}/delete"), &csrf, &[("confirm", "yes")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/admin/clients"));
        assert!(server.store.get_client(&id).await.unwrap().is_none());
        let (_, audit) = api(&server, &admin, Method::GET, "/audit?action=client.", None).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["client.delete", "client.rotate_secret", "client.create"]);
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends! {
    people_change_their_own_details => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "eli", &["staff"]).await;
        let (_, eli) = sign_in(&server, "eli", PASSWORD).await;
        let (_, html) = page(&eli, server.url("/account/security")).await;
        let csrf = hidden_field(&html, "csrf");
        let profile = |fields: Vec<(&'static str, &'static str)>| {
            let eli = eli.clone();
            let csrf = csrf.clone();
            let server = &server;
            async move { post(server, &eli, "/account/profile", &csrf, &fields).await }
        };
        let user = || async { server.store.find_user("eli").await.unwrap().unwrap() };
        let (status, _, location) = profile(vec![("display_name", "Eli <b>Bold</b>"), ("email", "eli@example.org")]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/account/security?changed=profile"));
        assert_eq!(user().await.display_name, "Eli <b>Bold</b>");
        let (_, html) = page(&eli, server.url("/account/security")).await;
        assert!(html.contains("Eli &lt;b&gt;Bold") && !html.contains("<b>Bold"), "escaped");
        // A new email needs the password: links go there.
        for (password, expected) in [("", StatusCode::UNAUTHORIZED), ("wrong password here", StatusCode::UNAUTHORIZED)] {
            let (status, html, _) = profile(vec![("display_name", "Eli"), ("email", "eli@elsewhere.example"), ("password", password)]).await;
            assert_eq!(status, expected, "{html}");
            assert_eq!(user().await.email.as_deref(), Some("eli@example.org"));
        }
        let (status, html, _) = profile(vec![("display_name", "Eli"), ("email", "root@example.org"), ("password", PASSWORD)]).await;
        assert_eq!(status, StatusCode::CONFLICT, "someone else's address: {html}");
        let (status, _, _) = profile(vec![("display_name", ""), ("email", "eli@example.org")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _, _) = profile(vec![("display_name", "Eli"), ("email", "eli@elsewhere.example"), ("password", PASSWORD)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(user().await.email.as_deref(), Some("eli@elsewhere.example"));
        server.stop().await;
    };
}

stackgate_testkit::on_both_backends! {
    settings_through_the_api => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (status, shown) = api(&server, &admin, Method::GET, "/settings", None).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["overridden"], json!([]));
        assert_eq!(shown["mfa_policy"], "optional");
        for bad in [
            json!({ "brand_colour": "blue" }),
            json!({ "session_idle_timeout": 60 }),
            json!({ "session_idle_timeout": 90000, "session_lifetime": 86400 }),
            json!({ "mfa_policy": "sometimes" }),
            json!({ "logo": "R0lGODlh" }),
            json!({ "logo": "not base64!" }),
            json!({ "organisation_name": "" }),
        ] {
            let (status, problem) = api(&server, &admin, Method::PATCH, "/settings", Some(bad.clone())).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
            assert!(problem["field"].is_string(), "{problem}");
        }
        let (status, _) = api(&server, &admin, Method::PATCH, "/settings", Some(json!({ "colour": "#000000" }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "unknown fields are named");
        assert!(server.store.settings().await.unwrap().is_empty(), "nothing was stored");
        let png = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        let (status, shown) = api(&server, &admin, Method::PATCH, "/settings", Some(json!({
            "organisation_name": "Example Newsroom", "session_lifetime": 86400, "session_idle_timeout": 3600, "logo": png,
        }))).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["organisation_name"], "Example Newsroom");
        assert_eq!(shown["logo"], "image/png");
        assert_eq!(shown["overridden"], json!(["organisation_logo", "organisation_name", "session_idle_timeout", "session_lifetime"]));
        let home = reqwest::get(server.url("/login")).await.unwrap().text().await.unwrap();
        assert!(home.contains("Example Newsroom"), "{home}");
        let (_, shown) = api(&server, &admin, Method::PATCH, "/settings", Some(json!({ "logo": null }))).await;
        assert_eq!(shown["logo"], Value::Null);
        server.stop().await;
    };
}

/// The invitation goes out over STARTTLS to a server whose certificate the organisation's own
/// CA signed (`smtp_ca_file`); a server Stackgate cannot verify gets nothing, and the admin is
/// told why and shown the link instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_go_out_over_starttls_and_only_to_a_verified_server() {
    let smtp = SmtpSink::start_tls().await;
    let url = smtp.url();
    let ca = smtp.ca_file().unwrap().display().to_string();
    let Some(server) = TestServer::start_with(
        stackgate_testkit::Backend::Sqlite,
        &[
            ("STACKGATE_SMTP_URL", url.as_str()),
            ("STACKGATE_SMTP_CA_FILE", ca.as_str()),
        ],
    )
    .await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    api(
        &server,
        &admin,
        Method::POST,
        "/users",
        Some(json!({ "username": "tess", "email": "tess@example.org" })),
    )
    .await;
    let (status, sent) = api(
        &server,
        &admin,
        Method::POST,
        "/users/tess/invitation",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["emailed_to"], "tess@example.org", "{sent}");
    let mail = smtp.wait_for(1).await;
    assert!(
        mail.link_containing("/account/link?token=").is_some(),
        "{}",
        mail.raw
    );
    server.stop().await;

    // Without the CA, the same server is not trusted: nothing is sent in the clear instead.
    let Some(server) = TestServer::start_with(
        stackgate_testkit::Backend::Sqlite,
        &[("STACKGATE_SMTP_URL", url.as_str())],
    )
    .await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    api(
        &server,
        &admin,
        Method::POST,
        "/users",
        Some(json!({ "username": "tess", "email": "tess@example.org" })),
    )
    .await;
    let (status, sent) = api(
        &server,
        &admin,
        Method::POST,
        "/users/tess/invitation",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert!(sent.get("emailed_to").is_none(), "{sent}");
    assert!(
        sent["not_emailed"]
            .as_str()
            .unwrap()
            .contains("could not be sent"),
        "{sent}"
    );
    assert!(
        sent["url"]
            .as_str()
            .unwrap()
            .contains("/account/link?token=")
    );
    assert_eq!(smtp.messages().len(), 1, "nothing more arrived");
    server.stop().await;
}

stackgate_testkit::on_both_backends! {
    an_invitation_never_skips_second_factors_someone_has => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        crate::proxy::user(&server, &admin, "fay", &["staff"]).await;
        let fay = server.store.find_user("fay").await.unwrap().unwrap();
        let codes = stackgate_identity::new_recovery_codes().unwrap();
        let digests: Vec<String> = codes
            .iter()
            .map(|c| stackgate_identity::recovery_code_digest(fay.id, c).unwrap())
            .collect();
        let entry = stackgate_identity::Actor::system("test")
            .entry("user.recovery_codes", stackgate_identity::Target::System);
        server.store.replace_recovery_codes(fay.id, &digests, &entry).await.unwrap();
        let (_, sent) = api(&server, &admin, Method::POST, "/users/fay/invitation", None).await;
        let link = sent["url"].as_str().unwrap().to_owned();
        let browser = server.browser();
        let new_password = "a brand new password for fay";
        let (status, _, location) = use_link(&server, &browser, &link, new_password, new_password).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/login"), "fay signs in with her second factor");
        assert!(!signed_in(&server, &browser).await, "the link alone made no session");
        server.stop().await;
    };
}
