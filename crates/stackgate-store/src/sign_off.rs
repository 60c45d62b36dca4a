//! Ending sessions: one transaction deletes the sessions, revokes every grant made under them
//! (so their refresh and access tokens stop at once), drops codes not yet exchanged, and records
//! a logout delivery for every app that asked to be told. The caller then delivers them.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows,
};
use stackgate_identity::{AuditEntry, Uuid};
use stackgate_oidc::Client;

/// Records a logout token owed to `client` for a session, in the caller's transaction, when
/// the client takes back-channel logout; evaluates to the delivery, or `None`.
macro_rules! owe_logout {
    ($conn:expr, $client:expr, $session_id:expr, $user_id:expr, $reason:expr, $now:expr) => {{
        let client: &Client = $client;
        match client.backchannel_logout_uri.clone() {
            None => None,
            Some(uri) => {
                let delivery = LogoutDelivery {
                    id: Uuid::new_v4(),
                    client_id: client.id.clone(),
                    alg: client.id_token_alg.as_str().to_owned(),
                    uri,
                    session_id: $session_id,
                    user_id: $user_id,
                };
                sqlx::query(
                    "INSERT INTO logout_deliveries (id, client_id, session_id, user_id, reason, status, attempts, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                )
                .bind(delivery.id.to_string())
                .bind(&delivery.client_id)
                .bind(&delivery.session_id)
                .bind(&delivery.user_id)
                .bind($reason)
                .bind($now)
                .execute($conn)
                .await?;
                Some(delivery)
            }
        }
    }};
}

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Sessions<'a> {
    /// The one whose cookie secret has this digest.
    BySecret(&'a str),
    /// Every session of a user ("sign out everywhere", disable, delete).
    OfUser(Uuid),
    /// One session of a user, by its public id (a person ending one device's session).
    OneOf { user: Uuid, id: Uuid },
    /// Every session of a user but one (a password change ends the others).
    OthersOf { user: Uuid, keep: Uuid },
    /// Sessions past their absolute or idle limit.
    ExpiredBefore { now: i64, idle_timeout: i64 },
}

/// A logout token owed to an app.
#[derive(Debug, Clone)]
pub struct LogoutDelivery {
    pub id: Uuid,
    pub client_id: String,
    /// The app's ID token algorithm, which its logout tokens use too.
    pub alg: String,
    pub uri: String,
    pub session_id: String,
    pub user_id: String,
}

/// What ending sessions left to do.
#[derive(Debug, Clone, Default)]
pub struct SignedOff {
    pub sessions: Vec<String>,
    pub back_channel: Vec<LogoutDelivery>,
    /// `(frontchannel_logout_uri, session id)` of apps that clear browser state in an iframe.
    pub front_channel: Vec<(String, String)>,
}

/// A delivery as admins see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: String,
    pub client_id: String,
    pub session_id: String,
    pub user_id: String,
    pub reason: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Ends the selected sessions; `audit` is written once if any session ended.
    pub async fn end_sessions(
        &self,
        which: Sessions<'_>,
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<SignedOff, StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sessions: Vec<(String, String)> = match which {
                Sessions::BySecret(hash) => {
                    sqlx::query_as("SELECT id, user_id FROM sessions WHERE secret_hash = $1")
                        .bind(hash)
                        .fetch_all(&mut *tx)
                        .await?
                }
                Sessions::OfUser(user) => {
                    // A sign-in half-way through (password proven, second factor pending) ends
                    // with the user's sessions.
                    sqlx::query("DELETE FROM login_flows WHERE user_id = $1")
                        .bind(user.to_string())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query_as("SELECT id, user_id FROM sessions WHERE user_id = $1")
                        .bind(user.to_string())
                        .fetch_all(&mut *tx)
                        .await?
                }
                Sessions::OneOf { user, id } => {
                    sqlx::query_as(
                        "SELECT id, user_id FROM sessions WHERE id = $1 AND user_id = $2",
                    )
                    .bind(id.to_string())
                    .bind(user.to_string())
                    .fetch_all(&mut *tx)
                    .await?
                }
                Sessions::OthersOf { user, keep } => {
                    sqlx::query_as(
                        "SELECT id, user_id FROM sessions WHERE user_id = $1 AND id <> $2",
                    )
                    .bind(user.to_string())
                    .bind(keep.to_string())
                    .fetch_all(&mut *tx)
                    .await?
                }
                Sessions::ExpiredBefore { now, idle_timeout } => sqlx::query_as(
                    "SELECT id, user_id FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
                )
                .bind(now)
                .bind(now - idle_timeout)
                .fetch_all(&mut *tx)
                .await?,
            };
            let mut result = SignedOff::default();
            for (session_id, user_id) in &sessions {
                // The session row goes first: an exchange holding it (see exchange_code) finishes
                // before this continues, so the grant it writes is revoked just below.
                sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE oauth_grants SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL")
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM authorization_codes WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                let clients: Vec<(String,)> = sqlx::query_as(
                    "SELECT c.settings FROM oauth_clients c WHERE c.id IN \
                     (SELECT client_id FROM oauth_grants WHERE session_id = $1)",
                )
                .bind(session_id)
                .fetch_all(&mut *tx)
                .await?;
                for (settings,) in clients {
                    let client: Client = serde_json::from_str(&settings)
                        .map_err(|_| StoreError::Corrupt("oauth_clients.settings"))?;
                    if let Some(uri) = client.frontchannel_logout_uri.clone() {
                        result.front_channel.push((uri, session_id.clone()));
                    }
                    let owed = owe_logout!(
                        &mut *tx,
                        &client,
                        session_id.clone(),
                        user_id.clone(),
                        reason,
                        now
                    );
                    result.back_channel.extend(owed);
                }

                result.sessions.push(session_id.clone());
            }
            if !sessions.is_empty() {
                let entry = audit.clone().with_detail(serde_json::json!({
                    "reason": reason,
                    "sessions": result.sessions,
                    "apps_notified": result.back_channel.iter().map(|d| &d.client_id).collect::<Vec<_>>(),
                }));
                write_audit!(&mut *tx, &entry, now);
            }
            tx.commit().await?;
            for id in &result.sessions {
                match Uuid::parse_str(id) {
                    Ok(id) => self.sessions.evict_session(id),
                    Err(_) => self.sessions.evict_all(),
                }
            }
            Ok(result)
        })
    }

    /// Records how a delivery went.
    pub async fn record_delivery(
        &self,
        id: Uuid,
        delivered: bool,
        attempts: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            sqlx::query("UPDATE logout_deliveries SET status = $2, attempts = $3, last_error = $4, updated_at = $5 WHERE id = $1")
                .bind(id.to_string())
                .bind(if delivered { "delivered" } else { "failed" })
                .bind(attempts)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The most recent deliveries, newest first.
    pub async fn logout_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, client_id, session_id, user_id, reason, status, attempts, last_error, created_at, updated_at \
                 FROM logout_deliveries ORDER BY created_at DESC, id LIMIT $1",
            )
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(pool)
            .await?
        }))
    }

    /// The ids of a user's live sessions.
    pub async fn session_ids_of(&self, user: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_all(pool)
                .await?
        });
        ids.iter().map(|id| rows::uuid(id, "sessions.id")).collect()
    }

    /// The sessions holding live grants of `client_id`, with their users.
    pub async fn client_sessions(
        &self,
        client_id: &str,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT session_id, user_id FROM oauth_grants \
                 WHERE client_id = $1 AND revoked_at IS NULL AND session_id IS NOT NULL AND user_id IS NOT NULL",
            )
            .bind(client_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(session, user)| Ok((session, rows::uuid(&user, "oauth_grants.user_id")?)))
            .collect()
    }

    /// Signs the given sessions out of one app only: its grants under them are revoked, its
    /// unused codes dropped, and a logout token is owed to it for each (when it takes them).
    /// The SSO sessions themselves stay.
    pub async fn sign_out_of_client(
        &self,
        client: &Client,
        sessions: &[(String, Uuid)],
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<LogoutDelivery>, StoreError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut deliveries = Vec::new();
            for (session_id, user_id) in sessions {
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $3 WHERE client_id = $1 AND session_id = $2 AND revoked_at IS NULL",
                )
                .bind(&client.id)
                .bind(session_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM authorization_codes WHERE client_id = $1 AND session_id = $2",
                )
                .bind(&client.id)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
                let owed = owe_logout!(
                    &mut *tx,
                    client,
                    session_id.clone(),
                    user_id.to_string(),
                    reason,
                    now
                );
                deliveries.extend(owed);
            }
            let entry = audit.clone().with_detail(serde_json::json!({
                "client": client.id, "reason": reason, "sessions": sessions.len(),
            }));
            write_audit!(&mut *tx, &entry, now);
            tx.commit().await?;
            Ok(deliveries)
        })
    }
}
