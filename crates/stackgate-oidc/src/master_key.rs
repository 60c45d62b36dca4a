//! The master key seals private keys and other secrets at rest with AES-256-GCM. Each sealed
//! value is bound to what it is (`aad`, e.g. `signing-key:KID`), so a ciphertext moved to another
//! row does not open.

use crate::OidcError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use stackgate_identity::random_bytes;

pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A key from 32 bytes, base64-encoded (the key file's and the config's format).
    pub fn from_base64(encoded: &str) -> Result<Self, OidcError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| OidcError::Key("the master key is not valid base64".into()))?;
        if bytes.len() != 32 {
            return Err(OidcError::Key(format!(
                "the master key must be 32 bytes, found {}",
                bytes.len()
            )));
        }
        let key =
            UnboundKey::new(&AES_256_GCM, &bytes).map_err(|e| OidcError::Key(e.to_string()))?;
        // A short public fingerprint, so "sealed with another key" can be said plainly.
        let id = STANDARD.encode(Sha256::digest(
            [b"stackgate-master-key-id:".as_slice(), &bytes].concat(),
        ))[..8]
            .to_owned();
        Ok(Self {
            key: LessSafeKey::new(key),
            id,
        })
    }

    /// A new random key, base64-encoded.
    pub fn generate() -> Result<String, OidcError> {
        let bytes = random_bytes::<32>().map_err(|e| OidcError::Key(e.to_string()))?;
        Ok(STANDARD.encode(bytes))
    }

    /// The key's public fingerprint.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// nonce || ciphertext || tag
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, OidcError> {
        let nonce = random_bytes::<NONCE_LEN>().map_err(|e| OidcError::Key(e.to_string()))?;
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| OidcError::Key("sealing failed".into()))?;
        Ok([nonce.as_slice(), &data].concat())
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, OidcError> {
        if sealed.len() < NONCE_LEN {
            return Err(OidcError::Key("sealed value is truncated".into()));
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| OidcError::Key("bad nonce".into()))?;
        let mut data = data.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| {
                OidcError::Key(format!(
                    "cannot open {aad}: wrong master key (this one is {}) or corrupted data",
                    self.id
                ))
            })?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_label() {
        let key = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        let sealed = key.seal("signing-key:a", b"secret").unwrap();
        assert_eq!(key.open("signing-key:a", &sealed).unwrap(), b"secret");
        assert!(
            key.open("signing-key:b", &sealed).is_err(),
            "bound to its label"
        );
        assert!(
            other.open("signing-key:a", &sealed).is_err(),
            "bound to its key"
        );
        assert_ne!(
            key.seal("signing-key:a", b"secret").unwrap(),
            sealed,
            "fresh nonce each time"
        );
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
