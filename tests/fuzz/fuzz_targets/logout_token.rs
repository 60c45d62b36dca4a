//! Back-channel logout tokens as the demo app (the relying party Stackgate ships) checks them.
#![no_main]

use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use stackgate_oidc::{KeyMaterial, SigningAlg};
use std::sync::LazyLock;

static JWKS: LazyLock<JwkSet> = LazyLock::new(|| {
    let material = KeyMaterial::generate(SigningAlg::EdDSA).expect("key");
    let jwks = serde_json::json!({ "keys": [material.jwk] });
    serde_json::from_value(jwks).expect("jwks")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = stackgate_demo::verify_logout_token(
            token,
            "https://login.example.org",
            "demo",
            &JWKS,
            1_700_000_000,
        );
    }
});
