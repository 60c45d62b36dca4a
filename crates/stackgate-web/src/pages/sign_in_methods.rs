//! What the sign-in page offers once a person has given their username: a password field, a
//! passkey button, or both, as that account has them. A name that is no account (or a disabled
//! one) gets a decoy drawn from the name under a server-only key: the same name always shows
//! the same methods, and a made-up name cannot be told from a real account by what it is shown.

use super::PageError;
use crate::state::AppState;
use serde::Serialize;
use stackgate_store::SignInCandidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Methods {
    pub password: bool,
    pub passkey: bool,
}

/// The methods for a username, looked up.
pub(crate) async fn of(state: &AppState, username: &str) -> Result<Methods, PageError> {
    let candidate = state.store.sign_in_candidate(username).await?;
    Ok(for_candidate(state, username, candidate.as_ref()))
}

/// The methods for a username, given what the store holds under it.
pub(crate) fn for_candidate(
    state: &AppState,
    username: &str,
    candidate: Option<&SignInCandidate>,
) -> Methods {
    let webauthn = state.webauthn.is_some();
    match candidate {
        Some(c) if !c.user.disabled => {
            let passkey = webauthn && c.factors.passkeys > 0;
            Methods {
                // An account with neither (an invitation not yet taken up) is shown the
                // password field, as most accounts are.
                password: c.password_hash.is_some() || !passkey,
                passkey,
            }
        }
        _ => {
            let draw = state
                .keyring
                .master_keys()
                .current()
                .keyed_hash("sign-in-decoy", normalized(username).as_bytes());
            decoy(draw.first().copied().unwrap_or(u8::MAX), webauthn)
        }
    }
}

/// The store's own spelling of a username, so that `Ana` and `ana ` draw the same decoy as
/// they find the same account.
fn normalized(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

/// A decoy from one random byte: about a quarter of names show a passkey beside the password,
/// one in thirty-two a passkey alone, the rest a password, roughly how accounts spread once an
/// organisation has started on passkeys.
fn decoy(draw: u8, webauthn: bool) -> Methods {
    if !webauthn {
        return Methods {
            password: true,
            passkey: false,
        };
    }
    match draw {
        0..=63 => Methods {
            password: true,
            passkey: true,
        },
        64..=71 => Methods {
            password: false,
            passkey: true,
        },
        _ => Methods {
            password: true,
            passkey: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoys_spread_over_every_kind_of_real_account() {
        let shown: Vec<Methods> = (0..=u8::MAX).map(|draw| decoy(draw, true)).collect();
        let count = |password, passkey| {
            shown
                .iter()
                .filter(|m| **m == Methods { password, passkey })
                .count()
        };
        assert_eq!(count(true, true), 64);
        assert_eq!(count(false, true), 8);
        assert_eq!(count(true, false), 184);
        assert_eq!(
            count(false, false),
            0,
            "never a page with nothing to sign in with"
        );
        // Without WebAuthn no account can show a passkey, so no decoy does.
        assert!((0..=u8::MAX).all(|draw| decoy(draw, false)
            == Methods {
                password: true,
                passkey: false
            }));
    }

    #[test]
    fn a_name_draws_as_the_store_finds_it() {
        assert_eq!(normalized("  Ana "), "ana");
    }
}
