//! Signing keys: generated with aws-lc-rs, kept as PKCS#8, published as JWKs. The key id is the
//! key's RFC 7638 thumbprint, so the same key always has the same `kid`.

use crate::OidcError;
use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// A public key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A new key: the private half to seal and store, the public half to publish.
pub struct KeyMaterial {
    pub kid: String,
    pub alg: SigningAlg,
    pub pkcs8: Vec<u8>,
    pub jwk: Jwk,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn key_err(e: impl std::fmt::Display) -> OidcError {
    OidcError::Key(e.to_string())
}

impl KeyMaterial {
    pub fn generate(alg: SigningAlg) -> Result<Self, OidcError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(key_err)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(key_err)?
                .as_ref()
                .to_vec(),
            SigningAlg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(key_err)?
                .as_der()
                .map_err(key_err)?
                .as_ref()
                .to_vec(),
        };
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        Ok(Self {
            kid: key.jwk.kid.clone(),
            alg,
            pkcs8,
            jwk: key.jwk,
        })
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key ready to sign.
pub struct SigningKey {
    pub alg: SigningAlg,
    pub jwk: Jwk,
    signer: Signer,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, OidcError> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (signer, mut jwk) = match alg {
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(key_err)?;
                let point = pair.public_key().as_ref().to_vec();
                // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
                let (x, y) = match point.as_slice() {
                    [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => {
                        return Err(OidcError::Key(
                            "unexpected P-256 public key encoding".into(),
                        ));
                    }
                };
                (
                    Signer::Ec(pair),
                    jwk_of(
                        "EC",
                        alg,
                        Some("P-256"),
                        Some(b64(x)),
                        Some(b64(y)),
                        None,
                        None,
                    ),
                )
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(key_err)?;
                let x = b64(pair.public_key().as_ref());
                (
                    Signer::Ed(pair),
                    jwk_of("OKP", alg, Some("Ed25519"), Some(x), None, None, None),
                )
            }
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(key_err)?;
                let public = pair.public_key();
                let n = b64(public.modulus().big_endian_without_leading_zero());
                let e = b64(public.exponent().big_endian_without_leading_zero());
                (
                    Signer::Rsa(pair),
                    jwk_of("RSA", alg, None, None, None, Some(n), Some(e)),
                )
            }
        };
        jwk.kid = thumbprint(&jwk);
        Ok(Self { alg, jwk, signer })
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, OidcError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(pair) => Ok(pair.sign(&rng, message).map_err(key_err)?.as_ref().to_vec()),
            Signer::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(key_err)?;
                Ok(signature)
            }
        }
    }
}

fn jwk_of(
    kty: &str,
    alg: SigningAlg,
    crv: Option<&str>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
) -> Jwk {
    Jwk {
        kty: kty.into(),
        use_: "sig".into(),
        alg: alg.as_str().into(),
        kid: String::new(),
        crv: crv.map(Into::into),
        x,
        y,
        n,
        e,
    }
}

/// RFC 7638: SHA-256 over the required members, in lexicographic order, without whitespace.
fn thumbprint(jwk: &Jwk) -> String {
    let canonical = match jwk.kty.as_str() {
        "EC" => serde_json::json!({ "crv": jwk.crv, "kty": jwk.kty, "x": jwk.x, "y": jwk.y }),
        "OKP" => serde_json::json!({ "crv": jwk.crv, "kty": jwk.kty, "x": jwk.x }),
        _ => serde_json::json!({ "e": jwk.e, "kty": jwk.kty, "n": jwk.n }),
    };
    // serde_json's map keeps keys sorted, which is exactly the canonical order.
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_algorithm_roundtrip_through_pkcs8() {
        for alg in SigningAlg::ALL {
            let material = KeyMaterial::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &material.pkcs8).unwrap();
            assert_eq!(again.jwk, material.jwk, "{alg:?}");
            assert_eq!(again.kid().len(), 43);
            assert_eq!(material.jwk.alg, alg.as_str());
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let jwk = Jwk {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            kid: String::new(),
            crv: None,
            x: None,
            y: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
        };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
