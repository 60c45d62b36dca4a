//! The master key seals private keys and other secrets at rest with AES-256-GCM. Each sealed
//! value is bound to what it is (`aad`, e.g. `signing-key:KID`), so a ciphertext moved to another
//! row does not open.

use crate::OidcError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use stackgate_identity::random_bytes;

pub struct MasterKey {
    key: LessSafeKey,
    /// Derived from the same 32 bytes (HKDF), so the sealing key is never also a MAC key.
    mac: hmac::Key,
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
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"stackgate-keyed-hash").extract(&bytes);
        let mac = prk
            .expand(&[b"hmac-sha256"], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .map_err(|_| OidcError::Key("the master key could not be expanded".into()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            mac,
            id,
        })
    }

    /// A new random key, base64-encoded.
    pub fn generate() -> Result<String, OidcError> {
        let bytes = random_bytes::<32>().map_err(|e| OidcError::Key(e.to_string()))?;
        Ok(STANDARD.encode(bytes))
    }

    /// HMAC-SHA-256 of `data` for `purpose`, under a key derived from this one: values that
    /// anyone without the master key cannot predict, yet that stay the same for the same input.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.mac);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(data);
        context.sign().as_ref().to_vec()
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

/// The current master key, which seals, and the previous ones still accepted for opening while
/// their values are resealed. Each sealed value records the id of the key that sealed it, so the
/// right key is chosen without trying them all.
#[derive(Debug)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl From<MasterKey> for MasterKeys {
    fn from(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }
}

impl MasterKeys {
    /// `previous` keys equal to the current one are dropped: a key named twice is not a rotation.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let previous = previous
            .into_iter()
            .filter(|k| k.id != current.id)
            .collect();
        Self { current, previous }
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    pub fn previous_ids(&self) -> impl Iterator<Item = &str> {
        self.previous.iter().map(|k| k.id())
    }

    /// Opens a value sealed by the key `master_key_id`.
    pub fn open(
        &self,
        master_key_id: &str,
        aad: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, OidcError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == master_key_id)
            .ok_or_else(|| {
                OidcError::Key(format!(
                    "{aad} is sealed with master key {master_key_id}, which is not configured \
                     (the current key is {}{}); add it to previous_master_keys",
                    self.current.id,
                    if self.previous.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", previous {}",
                            self.previous_ids().collect::<Vec<_>>().join(", ")
                        )
                    }
                ))
            })?;
        key.open(aad, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_are_stable_per_key_purpose_and_input() {
        let encoded = MasterKey::generate().unwrap();
        let key = MasterKey::from_base64(&encoded).unwrap();
        let same = MasterKey::from_base64(&encoded).unwrap();
        let other = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        let hash = key.keyed_hash("decoy", b"ana");
        assert_eq!(hash.len(), 32);
        assert_eq!(
            hash,
            same.keyed_hash("decoy", b"ana"),
            "stable for the same key"
        );
        assert_ne!(
            hash,
            other.keyed_hash("decoy", b"ana"),
            "another key, another hash"
        );
        assert_ne!(hash, key.keyed_hash("decoy", b"bea"));
        assert_ne!(
            hash,
            key.keyed_hash("other", b"ana"),
            "bound to its purpose"
        );
        // The purpose and the input are not run together: ("ab", "c") is not ("a", "bc").
        assert_ne!(key.keyed_hash("ab", b"c"), key.keyed_hash("a", b"bc"));
    }

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

    #[test]
    fn previous_keys_open_what_they_sealed_and_unknown_keys_are_named() {
        let old = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        let new = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        let sealed_old = old.seal("totp:u", b"old secret").unwrap();
        let old_id = old.id().to_owned();
        let keys = MasterKeys::new(new, vec![old]);
        assert_eq!(
            keys.open(&old_id, "totp:u", &sealed_old).unwrap(),
            b"old secret"
        );
        let sealed_new = keys.current().seal("totp:u", b"new secret").unwrap();
        let new_id = keys.current().id().to_owned();
        assert_eq!(
            keys.open(&new_id, "totp:u", &sealed_new).unwrap(),
            b"new secret"
        );
        assert!(
            keys.open(&new_id, "totp:u", &sealed_old).is_err(),
            "the recorded id picks the key; no other key is tried"
        );

        let only_new =
            MasterKeys::from(MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap());
        let message = only_new
            .open(&old_id, "totp:u", &sealed_old)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&old_id) && message.contains("previous_master_keys"),
            "{message}"
        );
    }
}
