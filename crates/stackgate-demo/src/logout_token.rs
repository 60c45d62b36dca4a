//! Back-Channel Logout 1.0 §2.6: what a relying party checks before it ends a session because
//! of a logout token. Done with `jsonwebtoken` against the provider's published keys, not with
//! Stackgate's own code.

use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};

const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a valid logout token says.
#[derive(Debug, Clone)]
pub struct LogoutClaims {
    pub sid: String,
    pub sub: String,
    pub jti: String,
}

/// Verifies `token` for client `audience` of `issuer`, with the keys in `jwks`; `now` is the
/// current Unix time (the token's `iat` must be within two minutes of it).
pub fn verify_logout_token(
    token: &str,
    issuer: &str,
    audience: &str,
    jwks: &JwkSet,
    now: i64,
) -> Result<LogoutClaims, String> {
    let header = decode_header(token).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("logout+jwt") {
        return Err(format!("typ {:?} is not logout+jwt", header.typ));
    }
    let kid = header.kid.as_deref().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    let claims = decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    if claims.get("nonce").is_some() {
        return Err("a logout token must not carry a nonce".into());
    }
    if !claims["events"]
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .is_some_and(serde_json::Value::is_object)
    {
        return Err("no back-channel logout event".into());
    }
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    if (now - iat).abs() > 120 {
        return Err("iat is not fresh".into());
    }
    Ok(LogoutClaims {
        sid: claims["sid"].as_str().ok_or("no sid")?.to_owned(),
        sub: claims["sub"].as_str().ok_or("no sub")?.to_owned(),
        jti: claims["jti"].as_str().ok_or("no jti")?.to_owned(),
    })
}
