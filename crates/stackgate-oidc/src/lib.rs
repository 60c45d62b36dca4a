//! The OpenID provider's rules, free of HTTP and SQL: clients and their redirect URIs, PKCE,
//! scopes, token claims, signing keys and their encryption at rest, and the JWS that carries them.
//!
//! The web crate speaks the protocol's HTTP; the store keeps grants and keys; this crate decides.

#![forbid(unsafe_code)]

mod claims;
mod client;
mod error;
mod jws;
mod keys;
mod master_key;
mod pkce;
mod redirect;
mod scope;

pub use claims::{
    AccessTokenClaims, BACKCHANNEL_LOGOUT_EVENT, IdTokenClaims, LogoutTokenClaims, UserClaims,
    at_hash,
};
pub use client::{AppAccess, AuthMethod, Client, ClientKind, GrantType, NewClient};
pub use error::OidcError;
pub use jws::{ClientAssertion, KeySet, sign, verify, verify_client_assertion};
pub use keys::{Jwk, Jwks, KeyMaterial, SigningAlg, SigningKey};
pub use master_key::{MasterKey, MasterKeys};
pub use pkce::{check_challenge, verify_s256};
pub use redirect::{is_loopback_redirect, redirect_uri_matches};
pub use scope::{SUPPORTED_SCOPES, Scopes};
