//! Compact JWS: signed here with aws-lc-rs, verified with `jsonwebtoken` — an independent
//! implementation — against the published keys. Verification takes the algorithm from the key
//! found by `kid`, never from the token, so `alg: none` and algorithm confusion cannot pass.

use crate::{Jwk, Jwks, OidcError, SigningAlg, SigningKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Serialize, de::DeserializeOwned};

/// Signs `claims` with `key`, with the given `typ` header (`JWT`, `at+jwt`, `logout+jwt`).
pub fn sign<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String, OidcError> {
    let header = serde_json::json!({ "alg": key.alg.as_str(), "kid": key.kid(), "typ": typ });
    let payload = serde_json::to_vec(claims).map_err(|e| OidcError::Key(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string().as_bytes()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The keys tokens may be verified against, by `kid`.
pub struct KeySet {
    keys: Vec<(String, SigningAlg, DecodingKey)>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(kid, alg, _)| (kid, alg)))
            .finish()
    }
}

impl KeySet {
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, OidcError> {
        let keys = jwks
            .keys
            .iter()
            .map(|jwk| Ok((jwk.kid.clone(), alg_of(jwk)?, decoding_key(jwk)?)))
            .collect::<Result<_, OidcError>>()?;
        Ok(Self { keys })
    }
}

fn alg_of(jwk: &Jwk) -> Result<SigningAlg, OidcError> {
    SigningAlg::parse(&jwk.alg)
        .ok_or_else(|| OidcError::Key(format!("unsupported alg {}", jwk.alg)))
}

fn decoding_key(jwk: &Jwk) -> Result<DecodingKey, OidcError> {
    let missing = || OidcError::Key(format!("incomplete JWK {}", jwk.kid));
    let key = match alg_of(jwk)? {
        SigningAlg::ES256 => DecodingKey::from_ec_components(
            jwk.x.as_deref().ok_or_else(missing)?,
            jwk.y.as_deref().ok_or_else(missing)?,
        ),
        SigningAlg::RS256 => DecodingKey::from_rsa_components(
            jwk.n.as_deref().ok_or_else(missing)?,
            jwk.e.as_deref().ok_or_else(missing)?,
        ),
        SigningAlg::EdDSA => DecodingKey::from_ed_components(jwk.x.as_deref().ok_or_else(missing)?),
    };
    key.map_err(|e| OidcError::Key(e.to_string()))
}

/// Verifies signature, `typ`, `iss` and (when given) `aud`. Expiry is the caller's to check
/// against its clock, so that time stays a parameter.
pub fn verify<T: DeserializeOwned>(
    keys: &KeySet,
    token: &str,
    typ: &str,
    issuer: &str,
    audience: Option<&str>,
) -> Result<T, OidcError> {
    let invalid = |why: &str| OidcError::InvalidToken(why.to_owned());
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("token has no kid"))?;
    let (_, alg, key) = keys
        .keys
        .iter()
        .find(|(k, _, _)| k == kid)
        .ok_or_else(|| invalid("token signed by an unknown key"))?;
    let algorithm = match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    };
    if header.alg != algorithm {
        return Err(invalid("token algorithm does not match its key"));
    }
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(invalid("token has the wrong type"));
    }
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    // The issuer (and the audience, when one is asked for) must be there, not only match when
    // present: a signed token without them would otherwise pass for any issuer or audience.
    validation.set_issuer(&[issuer]);
    match audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            validation.set_required_spec_claims(&["iss", "aud"]);
        }
        None => {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["iss"]);
        }
    }
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| invalid("token signature or claims are not valid"))
}

/// The claims of a client assertion (RFC 7523 §3) that matter for authentication.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ClientAssertion {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
}

/// Verifies a `private_key_jwt` client assertion: signed by one of the client's keys, issued
/// by and about the client, for this provider (`aud` is the token endpoint or the issuer),
/// unexpired and short-lived. The caller keeps `jti` to refuse replays.
pub fn verify_client_assertion(
    keys: &KeySet,
    token: &str,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<ClientAssertion, OidcError> {
    let invalid = |why: &str| OidcError::InvalidClient(why.to_owned());
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed client assertion"))?;
    let candidates: Vec<&(String, SigningAlg, DecodingKey)> = keys
        .keys
        .iter()
        .filter(|(kid, _, _)| header.kid.as_deref().is_none_or(|k| k == kid))
        .collect();
    for (_, alg, key) in candidates {
        let algorithm = match alg {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        };
        if header.alg != algorithm {
            continue;
        }
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["aud", "iss", "sub", "exp"]);
        validation.set_audience(audiences);
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.to_owned());
        if let Ok(data) = jsonwebtoken::decode::<ClientAssertion>(token, key, &validation) {
            let claims = data.claims;
            if claims.exp <= now {
                return Err(invalid("the client assertion has expired"));
            }
            if claims.exp > now + 600 {
                return Err(invalid(
                    "the client assertion must expire within 10 minutes",
                ));
            }
            if claims.jti.is_empty() {
                return Err(invalid("the client assertion needs a jti"));
            }
            return Ok(claims);
        }
    }
    Err(invalid(
        "the client assertion is not signed by a registered key of this client, or its claims are wrong",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyMaterial;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        iss: String,
        aud: String,
        sub: String,
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://sso.example.org".into(),
            aud: "app".into(),
            sub: "ana".into(),
        }
    }

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies() {
        for alg in SigningAlg::ALL {
            let material = KeyMaterial::generate(alg).unwrap();
            let key = SigningKey::from_pkcs8(alg, &material.pkcs8).unwrap();
            let keys = KeySet::from_jwks(&Jwks {
                keys: vec![material.jwk.clone()],
            })
            .unwrap();
            let token = sign(&key, "JWT", &claims()).unwrap();
            let back: Claims =
                verify(&keys, &token, "JWT", "https://sso.example.org", Some("app")).unwrap();
            assert_eq!(back, claims(), "{alg:?}");
            assert!(
                verify::<Claims>(&keys, &token, "at+jwt", "https://sso.example.org", None).is_err(),
                "typ"
            );
            assert!(
                verify::<Claims>(&keys, &token, "JWT", "https://other.example", None).is_err(),
                "iss"
            );
            assert!(
                verify::<Claims>(
                    &keys,
                    &token,
                    "JWT",
                    "https://sso.example.org",
                    Some("other")
                )
                .is_err(),
                "aud"
            );
        }
    }

    #[test]
    fn tampered_and_unsigned_tokens_are_refused() {
        let material = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &material.pkcs8).unwrap();
        let keys = KeySet::from_jwks(&Jwks {
            keys: vec![material.jwk.clone()],
        })
        .unwrap();
        let token = sign(&key, "JWT", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let evil = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://sso.example.org","aud":"app","sub":"root"}"#);
        let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert!(
            verify::<Claims>(&keys, &tampered, "JWT", "https://sso.example.org", None).is_err()
        );
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","kid":"{}","typ":"JWT"}}"#,
            key.kid()
        ));
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(
            verify::<Claims>(&keys, &unsigned, "JWT", "https://sso.example.org", None).is_err()
        );
        let hs_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","kid":"{}","typ":"JWT"}}"#,
            key.kid()
        ));
        let confused = format!("{hs_header}.{}.{}", parts[1], parts[2]);
        assert!(
            verify::<Claims>(&keys, &confused, "JWT", "https://sso.example.org", None).is_err()
        );
    }

    /// Found by the `jwt` fuzz target: a signed token with no `iss` (or no `aud`) passed the
    /// issuer (or audience) check, which ran only on claims that were present.
    #[test]
    fn a_missing_issuer_or_audience_is_refused() {
        let material = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &material.pkcs8).unwrap();
        let keys = KeySet::from_jwks(&Jwks {
            keys: vec![material.jwk.clone()],
        })
        .unwrap();
        let issuer = "https://sso.example.org";
        let no_iss = sign(
            &key,
            "JWT",
            &serde_json::json!({ "aud": "app", "sub": "ana" }),
        )
        .unwrap();
        assert!(verify::<serde_json::Value>(&keys, &no_iss, "JWT", issuer, None).is_err());
        assert!(verify::<serde_json::Value>(&keys, &no_iss, "JWT", issuer, Some("app")).is_err());
        let no_aud = sign(
            &key,
            "JWT",
            &serde_json::json!({ "iss": issuer, "sub": "ana" }),
        )
        .unwrap();
        assert!(verify::<serde_json::Value>(&keys, &no_aud, "JWT", issuer, Some("app")).is_err());
        assert!(
            verify::<serde_json::Value>(&keys, &no_aud, "JWT", issuer, None).is_ok(),
            "no audience asked, none needed"
        );
    }
}
