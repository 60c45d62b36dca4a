//! WebAuthn answers as a browser sends them, checked as the passkey pages check them. The first
//! byte picks the ceremony (even: registration, odd: sign-in); the rest are the answer's parts,
//! separated by `\n%%\n`:
//! - registration: client data JSON, attestation object (CBOR), credential id;
//! - sign-in: client data JSON, authenticator data, signature, user handle, credential id.
//!
//! `CHALLENGE` in the client data stands for the ceremony's challenge (a fresh random one
//! each run), `USER` and `CREDENTIAL` for the handle and id of a passkey a software
//! authenticator registered once: so the fuzzer gets past the challenge and the lookup to the
//! parsers and checks behind them.
//!
//! Invariants: no sign-in is accepted (only the software authenticator holds the key); an
//! accepted registration was made for this origin and this ceremony, is refused by any other
//! ceremony, and its stored record reads back as the passkey it was.
#![no_main]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use stackgate_web::fuzzing::{ISSUER, register_passkey, relying_party, sign_in_with_passkey};
use std::sync::LazyLock;
use url::Url;
use uuid::Uuid;
use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
use webauthn_rs::{Webauthn, prelude::Passkey};

/// The relying party, and one passkey registered through it: its owner, id and record.
struct Registered {
    webauthn: Webauthn,
    owner: Uuid,
    id: String,
    record: String,
}

static REGISTERED: LazyLock<Registered> = LazyLock::new(|| {
    let webauthn = relying_party().expect("a relying party for the issuer");
    let owner = Uuid::from_u128(0x5eed);
    let (options, state) = webauthn
        .start_passkey_registration(owner, "ana", "Ana", None)
        .expect("a registration ceremony");
    let mut authenticator = WebauthnAuthenticator::new(SoftPasskey::new(true));
    let origin = Url::parse(ISSUER).expect("the issuer is a URL");
    let answer = authenticator
        .do_registration(origin, options)
        .expect("the software authenticator answers");
    let saved = serde_json::to_value(state).expect("the state serialises");
    let (id, record) = register_passkey(&webauthn, &saved, &answer)
        .expect("a real authenticator's answer is accepted");
    Registered {
        webauthn,
        owner,
        id,
        record,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&ceremony, rest)) = data.split_first() else {
        return;
    };
    let parts: Vec<&[u8]> = split(rest, b"\n%%\n");
    let registered = &*REGISTERED;
    if ceremony % 2 == 0 {
        register(&registered.webauthn, &parts);
    } else {
        sign_in(registered, &parts);
    }
});

fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        parts.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    parts.push(rest);
    parts
}

fn part<'a>(parts: &[&'a [u8]], index: usize) -> &'a [u8] {
    parts.get(index).copied().unwrap_or_default()
}

/// `data` with each `placeholder` replaced by `value`.
fn replaced(data: &[u8], placeholder: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(placeholder.len()).position(|w| w == placeholder) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(value);
        rest = &rest[at + placeholder.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn register(webauthn: &Webauthn, parts: &[&[u8]]) {
    let start = || {
        let (options, state) = webauthn
            .start_passkey_registration(Uuid::from_u128(7), "bo", "Bo", None)
            .expect("a registration ceremony");
        let challenge = B64.encode(options.public_key.challenge.as_slice());
        (challenge, serde_json::to_value(state).expect("the state serialises"))
    };
    let (challenge, saved) = start();
    let client_data = replaced(part(parts, 0), b"CHALLENGE", challenge.as_bytes());
    let raw_id = part(parts, 2);
    let answer = json!({
        "id": B64.encode(raw_id),
        "rawId": B64.encode(raw_id),
        "response": {
            "attestationObject": B64.encode(part(parts, 1)),
            "clientDataJSON": B64.encode(&client_data),
        },
        "type": "public-key",
        "extensions": {},
    });
    let Ok(answer) = serde_json::from_value(answer) else {
        return;
    };
    let Ok((id, record)) = register_passkey(webauthn, &saved, &answer) else {
        return;
    };
    let said: Value = serde_json::from_slice(&client_data).expect("accepted client data is JSON");
    assert_eq!(said["type"], "webauthn.create", "{said}");
    assert_eq!(said["origin"], ISSUER, "{said}");
    assert_eq!(said["challenge"], challenge.as_str(), "{said}");
    let (_, other) = start();
    assert!(
        register_passkey(webauthn, &other, &answer).is_err(),
        "an answer to one ceremony is accepted by another"
    );
    let passkey: Passkey = serde_json::from_str(&record).expect("the record reads back");
    assert_eq!(B64.encode(passkey.cred_id().as_slice()), id);
}

fn sign_in(registered: &Registered, parts: &[&[u8]]) {
    let webauthn = &registered.webauthn;
    let (options, state) = webauthn
        .start_discoverable_authentication()
        .expect("a sign-in ceremony");
    let challenge = B64.encode(options.public_key.challenge.as_slice());
    let saved = serde_json::to_value(state).expect("the state serialises");
    let credential = B64
        .decode(&registered.id)
        .expect("the id is base64url");
    let client_data = replaced(part(parts, 0), b"CHALLENGE", challenge.as_bytes());
    let user = replaced(part(parts, 3), b"USER", registered.owner.as_bytes());
    let raw_id = replaced(part(parts, 4), b"CREDENTIAL", &credential);
    let answer = json!({
        "id": B64.encode(&raw_id),
        "rawId": B64.encode(&raw_id),
        "response": {
            "authenticatorData": B64.encode(part(parts, 1)),
            "clientDataJSON": B64.encode(&client_data),
            "signature": B64.encode(part(parts, 2)),
            "userHandle": B64.encode(&user),
        },
        "type": "public-key",
        "extensions": {},
    });
    let Ok(answer) = serde_json::from_value(answer) else {
        return;
    };
    let stored = |id: &str| {
        (id == registered.id).then(|| (registered.owner, registered.record.clone()))
    };
    let outcome = sign_in_with_passkey(webauthn, saved, &answer, stored);
    assert!(outcome.is_err(), "a sign-in no authenticator signed was accepted: {outcome:?}");
}
