use thiserror::Error;

/// What can go wrong at the edge, before or besides a request (requests themselves end in a
/// page or a status, never in an error value).
#[derive(Debug, Error)]
pub enum ProxyError {
    /// A setting that cannot be used; the message names it.
    #[error("{0}")]
    Config(String),

    /// A certificate or key file that cannot be read or used.
    #[error("{path}: {message}")]
    Certificate { path: String, message: String },

    /// The access policy does not compile; each problem has its place in the text.
    #[error("the access policy is not valid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Policy(Vec<crate::access::PolicyProblem>),

    #[error(transparent)]
    Store(#[from] stackgate_store::StoreError),

    #[error(transparent)]
    Io(#[from] std::io::Error),
}
