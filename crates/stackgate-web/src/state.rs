//! What every handler shares.

use crate::metrics::Metrics;
use stackgate_identity::{Clock, PasswordHasher};
use stackgate_store::Store;
use std::sync::Arc;
use url::Url;

/// The web settings, already validated by the binary's config loader.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The public base URL (the OIDC issuer): decides cookie security and allowed origins.
    pub issuer: Url,
    pub organisation_name: String,
    /// Seconds a session may stay unused.
    pub session_idle_timeout: i64,
    /// Seconds a session lives at most.
    pub session_lifetime: i64,
}

impl WebConfig {
    /// Cookies are `Secure` and `__Host-`-prefixed when served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// The origin browsers send for our own pages (`scheme://host[:port]`).
    pub fn origin(&self) -> String {
        self.issuer.origin().ascii_serialization()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer.as_str().trim_end_matches('/'), path)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
