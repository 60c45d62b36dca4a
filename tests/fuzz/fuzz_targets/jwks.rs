//! A JWKS document (an app's keys for `private_key_jwt`), read and turned into verification
//! keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_oidc::{Jwks, KeySet};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = serde_json::from_slice::<Jwks>(data) {
        let _ = KeySet::from_jwks(&jwks);
    }
});
