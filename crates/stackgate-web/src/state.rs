//! What every handler shares.

use crate::metrics::Metrics;
use stackgate_identity::{Clock, PasswordHasher};
use stackgate_store::Store;
use std::sync::Arc;

/// The web settings, already validated by the binary's config loader.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The public base URL, exactly as `iss` carries it (no trailing slash): decides cookie
    /// security and the origin browsers must send.
    pub issuer: String,
    /// `scheme://host[:port]` of the issuer.
    pub origin: String,
    pub organisation_name: String,
    /// The organisation's logo: content type and bytes, served at `/assets/logo`.
    pub logo: Option<Arc<(&'static str, Vec<u8>)>>,
    /// The pages' accent colour (`#rrggbb`), served in `/assets/brand.css`.
    pub brand_colour: Option<String>,
    /// Seconds a session may stay unused.
    pub session_idle_timeout: i64,
    /// Seconds a session lives at most.
    pub session_lifetime: i64,
    /// The global sign-in policy; groups may ask for more.
    pub mfa_policy: stackgate_identity::MfaPolicy,
    /// Seconds an invitation link stays valid.
    pub invitation_lifetime: i64,
    /// Seconds a password-reset link stays valid.
    pub password_reset_lifetime: i64,
}

impl WebConfig {
    /// The WebAuthn relying party for this issuer: its host name as the RP id, its origin as
    /// the only origin allowed.
    pub fn webauthn(&self) -> Result<webauthn_rs::Webauthn, String> {
        let origin = url::Url::parse(&self.origin).map_err(|e| e.to_string())?;
        let host = origin
            .domain()
            .ok_or("WebAuthn needs a host name in the issuer URL, not an IP address")?
            .to_owned();
        webauthn_rs::WebauthnBuilder::new(&host, &origin)
            .and_then(|b| b.rp_name(&self.organisation_name).build())
            .map_err(|e| e.to_string())
    }

    /// Cookies are `Secure` and `__Host-`-prefixed when served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The origin browsers send for our own pages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// An absolute URL of ours.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
    pub keyring: Arc<crate::oidc::keyring::Keyring>,
    /// For logout tokens to relying parties.
    pub http: reqwest::Client,
    /// WebAuthn for the issuer's host; `None` when the issuer is an IP address, which WebAuthn
    /// does not allow as a relying party id.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Failed sign-ins, for growing delays.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// The edge proxy, once it is running (it is built after the router it serves).
    pub edge: Arc<std::sync::OnceLock<Arc<dyn EdgeControl>>>,
    /// The app registry, once it is running (it needs this state to reach the edge).
    pub apps: Arc<std::sync::OnceLock<Arc<dyn crate::app_control::AppControl>>>,
    /// Outgoing email, when `smtp_url` is set; otherwise admins pass links on themselves.
    pub mailer: Option<Arc<stackgate_mail::Mailer>>,
    /// The config file's branding, session lifetimes and sign-in policy, with what admins
    /// changed in the console on top.
    pub settings: Arc<crate::settings::LiveSettings>,
}

impl AppState {
    /// The settings in force now.
    pub fn settings(&self) -> Arc<crate::settings::Settings> {
        self.settings.get()
    }
}

/// What the web layer asks of the edge proxy (which lives in a crate that depends on this one).
pub trait EdgeControl: Send + Sync {
    /// The host a proxy sign-in may return to (normalised), when `url` is on a protected host
    /// and uses the edge's scheme.
    fn return_host(&self, url: &url::Url) -> Option<String>;
    /// Every route in force: from the config file (`id` none) and added at runtime.
    fn routes(&self) -> Vec<RouteView>;
    /// Checks a route before it is stored, against the routes in force; returns it normalised
    /// (the host lower-cased, without port or trailing dot).
    fn check_route(
        &self,
        route: &stackgate_store::NewRoute,
    ) -> Result<stackgate_store::NewRoute, String>;
    /// Checks the admins' policy text with the routes in force.
    fn check_policy(&self, text: &str) -> Result<(), Vec<PolicyProblemView>>;
    /// The default and generated policy text, for admins to read.
    fn builtin_policies(&self) -> (String, String);
    /// The Cedar schema.
    fn schema(&self) -> &'static str;
    /// Re-reads routes and policies now (after this process changed them), so the change is in
    /// force when the API answers. Other replicas follow through the store's notifications.
    fn reload(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
    /// Answers an ingress's forward-auth question (nginx `auth_request`, Traefik `forwardAuth`).
    fn forward_auth(
        &self,
        headers: axum::http::HeaderMap,
    ) -> std::pin::Pin<Box<dyn Future<Output = axum::response::Response> + Send + '_>>;
}

/// A route as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RouteView {
    /// Absent for routes from the config file.
    pub id: Option<String>,
    pub host: String,
    pub path_prefix: String,
    pub upstream: String,
    pub app: String,
    pub groups: Vec<String>,
    pub public_paths: Vec<String>,
    /// The header the app reads its role from, when it reads one.
    pub role_header: Option<String>,
    /// `config` or `runtime`.
    pub source: &'static str,
}

/// One problem in a policy text.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PolicyProblemView {
    /// `defaults`, `routes` or `custom`.
    pub source: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl std::fmt::Display for PolicyProblemView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
