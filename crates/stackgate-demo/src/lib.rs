//! The catalog's demo app: a small relying party that signs people in through Stackgate with
//! the `openidconnect` crate (discovery, code flow with PKCE and nonce, ID token checks), shows
//! who is signed in, and ends its sessions on Back-Channel Logout.
//!
//! It is also the reference for app developers: everything an app needs from Stackgate is here,
//! in one file each.

pub mod app;
pub mod logout_token;

pub use app::{DemoSettings, Extra, Rp, Tokens, serve};
pub use logout_token::{LogoutClaims, verify_logout_token};

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("setting {0} is missing or not valid")]
    Setting(&'static str),
    #[error("provider discovery failed: {0}")]
    Discovery(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
