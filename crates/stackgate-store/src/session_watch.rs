//! Hearing, on PostgreSQL, of session and user changes other replicas commit, so this process's
//! session cache drops what they ended within milliseconds.
//!
//! Triggers (migration 0004) `NOTIFY` on every deleted session, changed or deleted user and
//! changed membership; notifications are delivered at commit. A dedicated connection listens.
//! Every process also pings the channel twice a second and counts the channel as alive only
//! while its own pings come back: a connection that was killed, or silently stopped delivering,
//! stops vouching for cached sessions within [`crate::session_cache::WATCH_FRESHNESS`], and the
//! cache falls back to short-lived entries until a new connection is listening.

use crate::{
    Store,
    pool::Pool,
    session_cache::{SessionCache, WatchStatus},
};
use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};
use stackgate_identity::Uuid;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The channel the migration's triggers notify.
const CHANNEL: &str = "stackgate_sessions";
const PING_EVERY: Duration = Duration::from_millis(500);
/// A listener that hears nothing (not even its pings) this long is replaced.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

impl Store {
    /// Keeps this process's session cache in step with other replicas until the pool closes.
    /// Returns at once on SQLite, where one process owns the database and its cache entries
    /// expire quickly anyway.
    pub async fn watch_sessions(&self) {
        let Pool::Postgres(pool) = &*self.pool else {
            return;
        };
        let pings = Arc::new(Pings {
            instance: format!("p:{}", Uuid::new_v4()),
            sent: Mutex::default(),
        });
        let pinger = tokio::spawn(send_pings(pool.clone(), pings.clone()));
        let closed = pool.close_event();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                () = &mut closed => break,
                outcome = listen(pool, &self.sessions, &pings) => {
                    self.sessions.watch_lost();
                    tracing::warn!(error = %outcome, "session change notifications lost; re-checking sessions until reconnected");
                }
            }
            tokio::select! {
                () = &mut closed => break,
                () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            }
        }
        self.sessions.watch_lost();
        pinger.abort();
    }

    /// Whether the notification channel is up, for metrics and tests.
    pub fn session_watch_status(&self) -> WatchStatus {
        self.sessions.watch_status()
    }
}

/// This process's pings: payload `p:<instance>:<sequence>`, with when each was sent.
struct Pings {
    instance: String,
    sent: Mutex<VecDeque<(u64, Instant)>>,
}

impl Pings {
    fn send(&self, sequence: u64) -> String {
        if let Ok(mut sent) = self.sent.lock() {
            if sent.len() >= 16 {
                sent.pop_front();
            }
            sent.push_back((sequence, Instant::now()));
        }
        format!("{}:{sequence}", self.instance)
    }

    /// When the ping with this payload was sent, if it is one of ours.
    fn sent_at(&self, payload: &str) -> Option<Instant> {
        let sequence: u64 = payload
            .strip_prefix(self.instance.as_str())?
            .strip_prefix(':')?
            .parse()
            .ok()?;
        let sent = self.sent.lock().ok()?;
        sent.iter().find(|(s, _)| *s == sequence).map(|(_, at)| *at)
    }
}

async fn send_pings(pool: PgPool, pings: Arc<Pings>) {
    let mut every = tokio::time::interval(PING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    while !pool.is_closed() {
        every.tick().await;
        sequence += 1;
        if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(pings.send(sequence))
            .execute(&pool)
            .await
        {
            tracing::debug!(%err, "cannot ping the session channel");
        }
    }
}

/// Listens on one fresh connection until it fails; returns why.
async fn listen(pool: &PgPool, cache: &SessionCache, pings: &Pings) -> String {
    // A connection of its own, outside the request pool and named so operators can find it.
    let options = (*pool.connect_options())
        .clone()
        .application_name(&format!("stackgate-session-watch-{}", std::process::id()));
    let own = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
    {
        Ok(own) => own,
        Err(err) => return err.to_string(),
    };
    let mut listener = match PgListener::connect_with(&own).await {
        Ok(listener) => listener,
        Err(err) => return err.to_string(),
    };
    // A lost connection must be noticed here, not papered over inside the listener.
    listener.eager_reconnect(false);
    if let Err(err) = listener.listen(CHANNEL).await {
        return err.to_string();
    }
    cache.watch_connected();
    tracing::info!("listening for session changes from other replicas");
    loop {
        match tokio::time::timeout(SILENCE_LIMIT, listener.try_recv()).await {
            Err(_) => return "no notification, not even a ping, for 3 s".into(),
            Ok(Err(err)) => return err.to_string(),
            Ok(Ok(None)) => return "connection closed".into(),
            Ok(Ok(Some(notification))) => apply(cache, notification.payload(), pings),
        }
    }
}

fn apply(cache: &SessionCache, payload: &str, pings: &Pings) {
    let Some((kind, id)) = payload.split_once(':') else {
        cache.evict_all();
        return;
    };
    match kind {
        "p" => {
            if let Some(sent) = pings.sent_at(payload) {
                cache.watch_ping(sent);
            }
        }
        "s" => match Uuid::parse_str(id) {
            Ok(id) => cache.evict_session(id),
            Err(_) => cache.evict_all(),
        },
        "u" => match Uuid::parse_str(id) {
            Ok(id) => cache.evict_user(id),
            Err(_) => cache.evict_all(),
        },
        // A group changed (its policy): any member's cached session may now be too weak.
        "all" => cache.evict_all(),
        // Another replica changed the proxy's routes or access policies.
        "r" => cache.proxy_changed(),
        // Something this version does not know: be safe.
        _ => cache.evict_all(),
    }
}
