//! Persistence for Stackgate: SQLite (the embedded default) and PostgreSQL (production).
//!
//! Every query is written once, in the SQL both backends share (`$N` placeholders, `RETURNING`,
//! integer Unix timestamps, text UUIDs), and runs on whichever pool is open through the
//! [`on_pool!`] macro, which instantiates the same code for each backend's native driver. The
//! few real differences (column types, booleans) live in the two migration folders.
//!
//! Every change an admin can make is written together with its audit entry, in one transaction.

#![forbid(unsafe_code)]

mod account_links;
mod api_tokens;
mod apps;
mod audit;
mod error;
mod grants;
mod groups;
mod oauth_clients;
mod pool;
mod proxy;
mod rows;
mod sealed_secrets;
mod second_factors;
mod session_cache;
mod session_watch;
mod sessions;
mod settings;
mod setup;
mod sign_off;
mod signing_keys;
#[cfg(feature = "testing")]
pub mod testing;
mod users;
mod webauthn;

pub use account_links::{FactorsRemoved, LinkPurpose};
pub use api_tokens::{ApiToken, TokenOwner};
pub use apps::{AppStatus, InstalledApp, NewInstall};
pub use audit::AuditFilter;
pub use error::StoreError;
pub use grants::{
    ActiveGrant, ActiveToken, CodeGrant, NewCode, NewGrant, Redemption, RefreshOutcome,
};
pub use groups::GroupListing;
pub use oauth_clients::StoredClient;
pub use pool::{Backend, PoolStats, Store, StoreOptions};
pub use proxy::{NewRoute, RouteRoles, StoredRoute};
pub use sealed_secrets::{Resealed, SealedOwner, SealedSecret};
pub use second_factors::{LoginFlow, SecondFactors, SignInCandidate, StoredTotp};
pub use session_cache::{SessionChange, WatchStatus};
pub use sessions::{NewSession, Session, SessionSummary};
pub use sign_off::{DeliveryRecord, LogoutDelivery, Sessions, SignedOff};
pub use signing_keys::StoredKey;
pub use users::{UserFilter, UserListing};
pub use webauthn::{CredentialKind, NewCredential, StoredCredential};

#[cfg(test)]
mod disk_full;
#[cfg(test)]
mod refresh_properties;
#[cfg(test)]
mod tests;
