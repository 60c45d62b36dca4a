//! Authorization and token requests: the query (or form body) parsed and checked as the
//! endpoints do, against a client with one redirect URI; and the `Authorization` header's
//! Basic credentials and bearer token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_oidc::{Client, NewClient};
use std::sync::LazyLock;

static CLIENT: LazyLock<Client> = LazyLock::new(|| {
    let new: NewClient = serde_json::from_value(serde_json::json!({
        "id": "app",
        "name": "App",
        "public": false,
        "redirect_uris": ["https://app.example.org/callback"],
        "post_logout_redirect_uris": [],
    }))
    .expect("client json");
    new.validate("app".to_owned()).expect("client")
});

fuzz_target!(|data: &[u8]| {
    let _ = stackgate_web::fuzzing::authorization_request(data, &CLIENT);
    let _ = stackgate_web::fuzzing::token_request(data);
    let (basic, bearer) = stackgate_web::fuzzing::authorization_header(data);
    if let Some(token) = bearer {
        assert_eq!(token, token.trim());
    }
    let _ = basic;
});
