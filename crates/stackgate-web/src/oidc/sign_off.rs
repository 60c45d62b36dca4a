//! Single sign-off: ending sessions and telling every app that held one.
//!
//! Logout tokens go out in parallel, each with a timeout and retries with backoff, after the
//! sessions are already gone: an app that is down delays nothing, and its failure is recorded
//! for admins to see.

use crate::state::AppState;
use stackgate_identity::{AuditEntry, Uuid};
use stackgate_oidc::{LogoutTokenClaims, SigningAlg, sign};
use stackgate_store::{LogoutDelivery, Sessions, SignedOff, StoreError};
use std::time::Duration;

/// Attempts per delivery, and the pause before each retry.
const BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];
const TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client for logout tokens: short timeouts, no redirects (a logout token must go
/// where the app registered, not where a redirect points).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Ends the sessions and starts telling the apps; returns what the signed-out page needs.
pub(crate) async fn end(
    state: &AppState,
    which: Sessions<'_>,
    reason: &str,
    audit: &AuditEntry,
) -> Result<SignedOff, StoreError> {
    let signed_off = state.store.end_sessions(which, reason, audit).await?;
    for delivery in signed_off.back_channel.clone() {
        tokio::spawn(deliver(state.clone(), delivery));
    }
    if !signed_off.sessions.is_empty() {
        tracing::info!(
            sessions = signed_off.sessions.len(),
            apps = signed_off.back_channel.len(),
            reason,
            "signed off"
        );
    }
    Ok(signed_off)
}

/// Sends logout tokens and waits for them, up to `limit`: for an app about to go away.
/// Returns how many the app took.
pub async fn deliver_and_wait(
    state: &AppState,
    deliveries: Vec<LogoutDelivery>,
    limit: Duration,
) -> usize {
    let tasks: Vec<_> = deliveries
        .into_iter()
        .map(|delivery| tokio::spawn(deliver(state.clone(), delivery)))
        .collect();
    let all = async {
        let mut taken = 0;
        for task in tasks {
            if task.await.unwrap_or(false) {
                taken += 1;
            }
        }
        taken
    };
    match tokio::time::timeout(limit, all).await {
        Ok(taken) => taken,
        Err(_) => {
            tracing::warn!("logout tokens to an app being removed did not all go out in time");
            0
        }
    }
}

/// Sends logout tokens owed to apps, each in its own task with retries.
pub fn deliver_all(state: &AppState, deliveries: Vec<LogoutDelivery>) {
    for delivery in deliveries {
        tokio::spawn(deliver(state.clone(), delivery));
    }
}

/// Posts one logout token, with retries; whether the app took it.
async fn deliver(state: AppState, delivery: LogoutDelivery) -> bool {
    let mut attempts = 0;
    let mut last_error = String::new();
    for pause in std::iter::once(None).chain(BACKOFF.iter().map(Some)) {
        if let Some(pause) = pause {
            tokio::time::sleep(*pause).await;
        }
        attempts += 1;
        match post(&state, &delivery).await {
            Ok(()) => {
                if let Err(err) = state
                    .store
                    .record_delivery(delivery.id, true, attempts, None)
                    .await
                {
                    tracing::warn!(%err, "cannot record a logout delivery");
                }
                return true;
            }
            Err(err) => last_error = err,
        }
    }
    tracing::warn!(client = %delivery.client_id, error = %last_error, "back-channel logout failed");
    if let Err(err) = state
        .store
        .record_delivery(delivery.id, false, attempts, Some(&last_error))
        .await
    {
        tracing::warn!(%err, "cannot record a logout delivery");
    }
    false
}

async fn post(state: &AppState, delivery: &LogoutDelivery) -> Result<(), String> {
    let claims = LogoutTokenClaims::new(
        &state.config.issuer,
        &delivery.client_id,
        &delivery.user_id,
        &delivery.session_id,
        Uuid::new_v4().to_string(),
        state.clock.unix(),
    );
    let keys = state.keyring.keys();
    let alg = SigningAlg::parse(&delivery.alg).unwrap_or(SigningAlg::ES256);
    let signer = keys.signer(alg).map_err(|e| e.to_string())?;
    let token = sign(signer, "logout+jwt", &claims).map_err(|e| e.to_string())?;
    let response = state
        .http
        .post(&delivery.uri)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|e| {
            // The cause an admin can act on, without the URL (which may carry secrets).
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.without_url().to_string()
            }
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

/// Ends sessions past their idle or absolute limit, with the same fan-out as a sign-out.
pub async fn end_expired(state: &AppState) -> Result<usize, StoreError> {
    let which = Sessions::ExpiredBefore {
        now: state.clock.unix(),
        idle_timeout: state.settings().session_idle_timeout,
    };
    let audit = stackgate_identity::Actor::system("session-timeout")
        .entry("session.expire", stackgate_identity::Target::System);
    Ok(end(state, which, "session timed out", &audit)
        .await?
        .sessions
        .len())
}

/// Front-channel logout URLs with `iss` and `sid` (Front-Channel Logout 1.0 §2).
pub(crate) fn front_channel_urls(state: &AppState, signed_off: &SignedOff) -> Vec<String> {
    signed_off
        .front_channel
        .iter()
        .filter_map(|(uri, sid)| {
            let mut url = url::Url::parse(uri).ok()?;
            url.query_pairs_mut()
                .append_pair("iss", &state.config.issuer)
                .append_pair("sid", sid);
            Some(url.to_string())
        })
        .collect()
}
