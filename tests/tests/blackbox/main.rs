//! Black-box tests: the real server over real HTTP, and the built `stackgate` binary.
//! One test binary, so the suite links once.

mod admin_api;
mod admin_console;
mod apps;
mod apps_kubernetes;
mod browser;
mod cli;
mod forward_auth;
mod master_key;
mod mfa;
mod mfa_policy;
mod oidc;
mod oidc_interop;
mod oidc_node;
mod openapi;
mod pages;
mod proxy;
mod proxy_stream;
mod proxy_tls;
mod replicas;
mod revocation_properties;
mod shutdown;
mod sign_off;
mod translation;
mod web_security;
