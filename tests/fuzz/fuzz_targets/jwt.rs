//! JWTs as the provider reads them: ID token hints, access tokens at userinfo, client
//! assertions. The first byte picks the input's use: a whole token, or claims that are signed
//! with a real key first (so that the checks after the signature are reached too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_oidc::{
    Jwks, KeyMaterial, KeySet, SigningAlg, SigningKey, sign, verify, verify_client_assertion,
};
use std::sync::LazyLock;

const ISSUER: &str = "https://login.example.org";

static KEYS: LazyLock<(SigningKey, KeySet)> = LazyLock::new(|| {
    let material = KeyMaterial::generate(SigningAlg::ES256).expect("key");
    let signing = SigningKey::from_pkcs8(SigningAlg::ES256, &material.pkcs8).expect("signing key");
    let set = KeySet::from_jwks(&Jwks {
        keys: vec![material.jwk],
    })
    .expect("key set");
    (signing, set)
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (signing, keys) = &*KEYS;
    let token = if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        token.to_owned()
    } else {
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        let typ = if mode % 4 == 1 { "JWT" } else { "at+jwt" };
        sign(signing, typ, &claims).expect("signing")
    };
    let checked = verify::<serde_json::Value>(keys, &token, "JWT", ISSUER, Some("app"));
    if let Ok(claims) = &checked {
        // Accepted only when it names the issuer and audience asked for (a claim may be a
        // list, as RFC 7519 allows for `aud`; the issuer's typed claims refuse a list).
        let names = |claim: &serde_json::Value, value: &str| {
            claim == value
                || claim
                    .as_array()
                    .is_some_and(|l| l.iter().any(|v| v == value))
        };
        assert!(names(&claims["iss"], ISSUER), "{claims}");
        assert!(names(&claims["aud"], "app"), "{claims}");
    }
    let _ = verify::<serde_json::Value>(keys, &token, "at+jwt", ISSUER, None);
    let _ = verify_client_assertion(
        keys,
        &token,
        "app",
        &[ISSUER, "https://login.example.org/token"],
        1_700_000_000,
    );
    let _ = stackgate_web::fuzzing::client_assertion_subject(&token);
});
