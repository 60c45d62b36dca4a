use thiserror::Error;

/// What can go wrong inside the identity domain.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// A field failed validation; `field` names it as the API and CLI spell it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },

    /// The password was refused by the password policy; its `Display` is meant for the person
    /// (in English: pages translate the variant themselves).
    #[error("password: {0}")]
    WeakPassword(crate::Weakness),

    /// Hashing failed (bad parameters, or the blocking task was lost).
    #[error("password hashing failed: {0}")]
    Hashing(String),

    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

impl IdentityError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}
