//! PKCE (RFC 7636), S256 only: `plain` lets a stolen code be redeemed by whoever saw it.

use crate::OidcError;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use stackgate_identity::secrets_equal;

fn well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the authorization request's challenge and method.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OidcError> {
    match method {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(OidcError::InvalidRequest(
                "code_challenge_method must be S256 (plain is not accepted)".into(),
            ));
        }
        Some(other) => {
            return Err(OidcError::InvalidRequest(format!(
                "unsupported code_challenge_method {other:?}; use S256"
            )));
        }
    }
    if challenge.len() != 43 || !well_formed(challenge) {
        return Err(OidcError::InvalidRequest(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)".into(),
        ));
    }
    Ok(())
}

/// Whether `verifier` hashes to `challenge`; compared in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    secrets_equal(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        check_challenge(challenge, Some("S256")).unwrap();
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!verify_s256("short", challenge));
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(challenge, Some("plain")).is_err());
        assert!(check_challenge(challenge, None).is_err());
        assert!(check_challenge("abc", Some("S256")).is_err());
    }
}
