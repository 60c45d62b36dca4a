//! The admin API's JSON bodies, each parsed as its handler parses it: the first byte picks the
//! body, the rest is the JSON. A rejection quotes a bounded part of what it was sent, with no
//! control character in it, and says nothing that depends on a password or secret the body
//! carried (the same body with each such value masked is rejected in the same words).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stackgate_web::fuzzing::{API_BODIES, api_body};

/// Keys whose string values are secrets wherever they sit in a body.
const SECRET_KEYS: &[&str] = &["password", "secret", "client_secret", "token"];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let kind = usize::from(kind);
    let Err((detail, field)) = api_body(kind, body) else {
        return;
    };
    let name = API_BODIES[kind % API_BODIES.len()];
    // The field and the reason are quoted at most 200 characters each, with an ellipsis where
    // more was cut; the detail is the two joined, or the reason after "malformed JSON: ".
    if let Some(field) = &field {
        assert!(field.chars().count() <= 201, "{name}: {} characters", field.len());
    }
    assert!(
        detail.chars().count() <= 2 * 201 + 16,
        "{name}: {} characters",
        detail.len()
    );
    for text in std::iter::once(&detail).chain(field.as_ref()) {
        assert!(!text.chars().any(char::is_control), "{name}: {text:?}");
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut masked = value.clone();
    if !mask_secrets(&mut masked) {
        return;
    }
    let canonical = |v: &Value| serde_json::to_vec(v).expect("a JSON value serialises");
    // Where in the text serde stopped (" at line 1 column 42") moves with how long the secret
    // is once escaped: that tells the sender only what they sent.
    let words = |kind, body: &Value| {
        api_body(kind, &canonical(body)).map_err(|(detail, field)| {
            let words = detail.split(" at line ").next().unwrap_or_default().to_owned();
            (words, field)
        })
    };
    assert_eq!(
        words(kind, &value),
        words(kind, &masked),
        "{name}: a rejection depends on a secret's value"
    );
});

/// Replaces every string under a secret's key with as many `*`; whether there was one.
fn mask_secrets(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut masked = false;
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(text) if SECRET_KEYS.contains(&key.as_str()) => {
                        let stars = "*".repeat(text.chars().count());
                        masked |= *text != stars;
                        *text = stars;
                    }
                    other => masked |= mask_secrets(other),
                }
            }
            masked
        }
        Value::Array(items) => items.iter_mut().fold(false, |m, i| mask_secrets(i) | m),
        _ => false,
    }
}
