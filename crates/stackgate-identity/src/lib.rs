//! The identity domain: users, groups, credentials, API tokens and audit records.
//!
//! Everything here is plain data and pure rules. It knows nothing of HTTP or SQL: the store
//! persists these types, the web crate exposes them. Constructors validate, so a value of a
//! domain type (a [`NewUser`], a [`PasswordHash`]) is always one that passed the rules.

#![forbid(unsafe_code)]

mod audit;
mod clock;
mod error;
mod group;
mod mfa_policy;
mod names;
pub use names::group_name;
mod password;
mod second_factor;
mod secret;
mod user;

pub use audit::{Actor, AuditEntry, AuditRecord, Target};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::IdentityError;
pub use group::{ADMINS_GROUP_ID, ADMINS_GROUP_NAME, Group, GroupPatch, NewGroup};
pub use mfa_policy::MfaPolicy;
pub use password::{Argon2Params, PasswordHash, PasswordHasher, PasswordPolicy, Weakness};
pub use second_factor::{
    RECOVERY_CODE_COUNT, new_recovery_codes, new_totp_secret, recovery_code_digest,
    totp_secret_text, totp_step, totp_url,
};
pub use secret::{SecretToken, hash_secret, random_bytes, secrets_equal};
pub use user::{NewUser, User, UserPatch};

pub use time::OffsetDateTime;
pub use uuid::Uuid;
