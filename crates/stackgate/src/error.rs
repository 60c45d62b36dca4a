use stackgate_identity::IdentityError;
use stackgate_store::StoreError;
use thiserror::Error;

/// Why a command failed. Each message is one line meant for the person at the terminal.
#[derive(Debug, Error)]
pub enum CliError {
    /// A configuration value is wrong; the message starts with the key.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The command was used wrongly (missing input, unknown name).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// Exit statuses after sysexits.h, so scripts can tell bad config from a failed action.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 78,
            CliError::Usage(_)
            | CliError::Identity(IdentityError::Invalid { .. } | IdentityError::WeakPassword(_)) => {
                64
            }
            CliError::Store(
                StoreError::Conflict { .. } | StoreError::NotFound(_) | StoreError::Refused(_),
            ) => 65,
            CliError::Store(e) if e.is_unavailable() => 69,
            _ => 1,
        }
    }
}
