//! A client as an admin (or an app's manifest) describes it, through the API's JSON. What
//! validates has only redirect URIs fit to receive codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_oidc::NewClient;

fuzz_target!(|data: &[u8]| {
    let Ok(new) = serde_json::from_slice::<NewClient>(data) else {
        return;
    };
    if let Ok(client) = new.validate("generated-id".to_owned()) {
        for uri in &client.redirect_uris {
            assert!(!uri.contains('#'), "a fragment in {uri:?}");
            assert!(!uri.is_empty());
        }
    }
});
