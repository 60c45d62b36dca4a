//! Stackgate's edge: one listener (HTTPS, or plain HTTP for development) in front of the login
//! host and every protected app.
//!
//! A request for the login host goes to the web router in-process. A request for an app host
//! is matched to a route, checked (the proxy's own session cookie for that host, looked up in
//! memory; the sign-in policy; the Cedar access policy), given the caller's identity, and
//! streamed to the upstream. Forward-auth answers the same question for an ingress that keeps
//! proxying itself.

#![forbid(unsafe_code)]

pub mod access;
mod body_timeout;
mod connections;
mod control;
mod edge;
mod error;
mod forward_auth;
mod identity;
mod keep_alive;
mod listener;
mod log_throttle;
mod pages;
pub mod paths;
pub mod routes;
mod stream_watch;
mod tls;
mod upstream;

/// Entry points for the fuzz targets in `tests/fuzz`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::forward_auth::{Asked, asked as forward_auth_asked};
    pub use crate::upstream::sanitise_request;

    /// Whether the edge, after signing a browser in on an app's host, sends it on to `path`.
    pub fn is_return_path(path: &str) -> bool {
        crate::edge::is_local_path(path)
    }

    /// The edge cookie `name` as the edge reads it, then removed from the request as before it
    /// goes upstream.
    pub fn take_edge_cookie(headers: &mut hyper::HeaderMap, name: &str) -> Option<String> {
        let value = crate::edge::cookie_value(headers, name).map(str::to_owned);
        crate::edge::remove_cookies(headers, &[name]);
        value
    }
}

pub use access::{AccessPolicy, PolicyProblem};
pub use edge::{Edge, EdgeSettings};
pub use error::ProxyError;
pub use identity::IdentityHeaders;
pub use listener::{Listener, serve, serve_redirect};
pub use routes::{Route, RouteTable};
pub use tls::CertResolver;
