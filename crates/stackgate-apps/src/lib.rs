//! The app registry: manifests, the catalog, and the install lifecycle that deploys an app,
//! wires its OIDC client, routes it through the edge and limits it to the groups an admin chose.
//! A failing step undoes the steps before it, so nothing is ever left half-installed.

mod app_files;
pub mod app_users;
mod catalog;
mod checks;
pub mod kubernetes;
pub mod manifest;
#[cfg(any(test, feature = "testing"))]
pub mod mock_cluster;
mod pid_file;
mod process;
pub mod registry;
#[cfg(test)]
mod tests;

pub use catalog::Catalog;
pub use manifest::{Manifest, Problem};
pub use process::ProcessDriver;
pub use registry::{Registry, RegistrySettings};

/// Install steps, in order.
pub const STEPS: &[&str] = &["client", "secret", "deploy", "route", "ready"];

/// What can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// Every problem in a manifest, each with its place.
    #[error("the manifest is not valid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Manifest(Vec<Problem>),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Process(String),
    #[error(transparent)]
    Store(#[from] stackgate_store::StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
