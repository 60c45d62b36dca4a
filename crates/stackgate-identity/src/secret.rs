//! High-entropy secrets handed to people and programs (API tokens, setup links, session ids),
//! and how they are kept: only a SHA-256 digest is stored. The secrets carry 256 bits of
//! entropy, so a fast digest is enough and lets the store look them up by index.

use crate::IdentityError;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fills `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| IdentityError::Random(e.to_string()))?;
    Ok(buf)
}

/// The digest under which a secret is stored.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A freshly generated secret: the plaintext to show once, and the digest to store.
pub struct SecretToken {
    pub plaintext: String,
    pub hash: String,
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretToken").finish_non_exhaustive()
    }
}

impl SecretToken {
    /// `prefix` makes leaked tokens recognisable to secret scanners (`sgt_` for API tokens).
    pub fn generate(prefix: &str) -> Result<Self, IdentityError> {
        let plaintext = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
        let hash = hash_secret(&plaintext);
        Ok(Self { plaintext, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = SecretToken::generate("sgt_").unwrap();
        let b = SecretToken::generate("sgt_").unwrap();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("sgt_") && a.plaintext.len() == 4 + 43);
        assert_eq!(hash_secret(&a.plaintext), a.hash);
        assert_ne!(a.hash, a.plaintext);
        assert!(secrets_equal(b"same", b"same"));
        assert!(!secrets_equal(b"same", b"sane"));
    }
}
