//! Second factors that need no special hardware: TOTP as authenticator apps implement it
//! (Google Authenticator, Aegis, FreeOTP: SHA-1, 6 digits, 30 s steps), and recovery codes.
//!
//! A TOTP code is accepted for the current step and one step either side (clock skew); which
//! step matched is returned so the store can refuse any step not newer than the last accepted
//! one: a code works once.

use crate::{IdentityError, hash_secret, random_bytes};
use data_encoding::BASE32_NOPAD;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes in a TOTP secret (160 bits, RFC 4226's recommendation for SHA-1).
const TOTP_SECRET_LEN: usize = 20;
/// Recovery codes handed out at a time.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code: 80 bits, 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;

/// A fresh TOTP secret from the OS generator.
pub fn new_totp_secret() -> Result<Vec<u8>, IdentityError> {
    Ok(random_bytes::<TOTP_SECRET_LEN>()?.to_vec())
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, IdentityError> {
    // The otpauth label may not contain ':'; an organisation name with one is shown without it.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .map_err(|e| IdentityError::invalid("totp", e.to_string()))
}

/// The secret as people type it into an app by hand: base32 in groups of four.
pub fn totp_secret_text(secret: &[u8]) -> String {
    BASE32_NOPAD
        .encode(secret)
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URL an authenticator app scans from the QR code.
pub fn totp_url(secret: &[u8], issuer: &str, account: &str) -> Result<String, IdentityError> {
    totp(secret, issuer, account)?
        .to_url()
        .map_err(|e| IdentityError::invalid("totp", e.to_string()))
}

/// The time step `code` is valid for at `unix` (±1 step), if any.
pub fn totp_step(secret: &[u8], code: &str, unix: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(unix).ok()?;
    let totp = totp(secret, "stackgate", "user").ok()?;
    totp.check(&code, now)
        .and_then(|step| i64::try_from(step).ok())
}

/// New recovery codes, as shown to the person once (`XXXX-XXXX-XXXX-XXXX`).
pub fn new_recovery_codes() -> Result<Vec<String>, IdentityError> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let text = BASE32_NOPAD.encode(&random_bytes::<RECOVERY_CODE_BYTES>()?);
            Ok(text
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-"))
        })
        .collect()
}

/// The digest a recovery code is stored and looked up by, bound to its user so that one user's
/// code never matches another's. `None` for input that cannot be a recovery code.
pub fn recovery_code_digest(user: uuid::Uuid, input: &str) -> Option<String> {
    let normalized: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = BASE32_NOPAD
        .decode(normalized.as_bytes())
        .is_ok_and(|bytes| bytes.len() == RECOVERY_CODE_BYTES);
    valid.then(|| hash_secret(&format!("{user}:{normalized}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_and_reports_the_step() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", truncated to 6 digits.
        let seed = b"12345678901234567890";
        assert_eq!(totp_step(seed, "287082", 59), Some(1));
        assert_eq!(totp_step(seed, "081804", 1_111_111_109), Some(37_037_036));
        // One step of skew either way, no more.
        assert_eq!(
            totp_step(seed, "081804", 1_111_111_109 + 30),
            Some(37_037_036)
        );
        assert_eq!(totp_step(seed, "081804", 1_111_111_109 + 60), None);
        assert_eq!(totp_step(seed, "08180", 1_111_111_109), None);
        assert_eq!(totp_step(seed, "abcdef", 1_111_111_109), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_bound_to_their_user() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        let (ana, bea) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let digest = recovery_code_digest(ana, code).unwrap();
        assert_eq!(
            recovery_code_digest(ana, &code.to_lowercase().replace('-', " ")),
            Some(digest.clone()),
            "typing it in lower case with spaces is the same code"
        );
        assert_ne!(recovery_code_digest(bea, code), Some(digest));
        assert_eq!(recovery_code_digest(ana, "123456"), None);
    }

    #[test]
    fn the_url_names_the_issuer_and_account() {
        let url = totp_url(b"12345678901234567890", "Free: Press", "ana").unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(
            url.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{url}"
        );
        assert!(
            url.contains("issuer=Free%20%20Press") || url.contains("issuer=Free+"),
            "{url}"
        );
        assert_eq!(
            totp_secret_text(b"12345678901234567890"),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }
}
