//! Rotating the master key: a server started with a new key and the old one in
//! `previous_master_keys` reseals every secret at rest, the TOTP secrets and signing keys keep
//! working, and a key that opens nothing stops the start without touching a row.

use crate::mfa::{enrol_totp, id_token_claims, password_step, second_factor, signed_in};
use reqwest::StatusCode;
use serde_json::Value;
use stackgate_oidc::MasterKey;
use stackgate_testkit::{TestServer, oathtool, on_both_backends};

async fn published_kids(server: &TestServer) -> Vec<String> {
    let jwks: Value = reqwest::get(server.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

on_both_backends! {
    a_new_master_key_reseals_every_secret_and_nothing_stops_working => |mut server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let (secret, step) = enrol_totp(&server, &admin.browser).await;
        let kids = published_kids(&server).await;
        let old = std::fs::read_to_string(server.config.data_dir.join("master.key")).unwrap();
        let old_id = MasterKey::from_base64(&old).unwrap().id().to_owned();
        assert_eq!(server.keyring.master_keys().current().id(), old_id);
        let sealed = server.store.sealed_secrets_not_under("no such key").await.unwrap();
        assert!(sealed.len() >= 3, "signing keys and the TOTP secret: {sealed:?}");

        let new = MasterKey::generate().unwrap();
        let new_id = MasterKey::from_base64(&new).unwrap().id().to_owned();
        server.config.master_key = Some(new.clone());
        server.config.previous_master_keys = vec![old.trim().to_owned()];
        server.restart().await;
        assert!(server.store.sealed_secrets_not_under(&new_id).await.unwrap().is_empty(), "all resealed");
        assert_eq!(published_kids(&server).await, kids, "the same signing keys, resealed");
        let audit = server.store.list_audit(&stackgate_store::AuditFilter {
            action: Some("master_key.reseal".into()),
            limit: 10,
            ..Default::default()
        }).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].detail["resealed"], sealed.len(), "{:?}", audit[0]);

        // The old key can go: TOTP sign-in and token signing work on the new key alone.
        server.config.previous_master_keys.clear();
        server.restart().await;
        let (browser, response) = password_step(&server, stackgate_testkit::ADMIN_PASSWORD).await;
        assert_eq!(response.headers()["location"], "/login/second-factor");
        let ok = second_factor(&server, &browser, &oathtool(&secret, (step + 1) * 30)).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        assert!(signed_in(&server, &browser).await);
        let claims = id_token_claims(&server, &admin.token, &browser, "wiki").await;
        assert_eq!(claims["sub"].as_str().map(str::is_empty), Some(false), "{claims}");

        // A key that opens nothing here: the start stops, names the key it needs, changes nothing.
        let mut stranger = server.config.clone();
        stranger.master_key = Some(MasterKey::generate().unwrap());
        let refused = stackgate::server::keyring(&stranger, &server.store).await.unwrap_err().to_string();
        assert!(refused.contains(&new_id) && refused.contains("previous_master_keys"), "{refused}");
        assert!(server.store.sealed_secrets_not_under(&new_id).await.unwrap().is_empty());
        assert_eq!(published_kids(&server).await, kids, "no key was added");
    };
}
