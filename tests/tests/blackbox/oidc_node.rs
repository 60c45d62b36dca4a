//! A relying party from another ecosystem: `openid-client` (Node.js, OpenID-certified) runs the
//! code flow, userinfo, introspection, refresh rotation and reuse detection against the server.
//! `tests/run` installs it (`npm ci` in tests/rp-node).

use serde_json::{Value, json};
use stackgate_testkit::{ADMIN_PASSWORD, TestServer, on_both_backends};
use std::path::Path;

on_both_backends! {
    full_code_flow_with_node_openid_client => |server: TestServer| async move {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rp-node");
        assert!(
            dir.join("node_modules/openid-client").exists(),
            "openid-client is not installed: run `npm ci --prefix tests/rp-node` (tests/run does)"
        );
        let admin = server.bootstrap_admin().await;
        let redirect = "http://127.0.0.1:9/callback";
        let created: Value = reqwest::Client::new()
            .post(server.url("/api/v1/clients"))
            .bearer_auth(&admin.token)
            .json(&json!({ "id": "rp-node", "name": "Node RP", "redirect_uris": [redirect], "first_party": true }))
            .send().await.unwrap().json().await.unwrap();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        let issuer = server.base_url.clone();
        let output = tokio::process::Command::new("node")
            .arg(dir.join("run.mjs"))
            .env("ISSUER", &issuer)
            .env("CLIENT_ID", "rp-node")
            .env("CLIENT_SECRET", &secret)
            .env("REDIRECT_URI", redirect)
            .env("USERNAME", "root")
            .env("PASSWORD", ADMIN_PASSWORD)
            .output()
            .await
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "openid-client failed:\n{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
        assert_eq!(report["ok"], true);
        assert_eq!(report["username"], "root");
        let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for step in ["discovery", "authorize", "code", "userinfo", "introspect", "refresh", "reuse-refused", "revoked-inactive"] {
            assert!(steps.contains(&step), "step {step} missing from {report}");
        }
    };
}
