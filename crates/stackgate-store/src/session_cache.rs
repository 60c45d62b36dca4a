//! Each process's memory of live sessions, so that a request with a session cookie (every page,
//! every proxied request) costs no database round-trip.
//!
//! A cached session is trusted only as long as this process would learn of its end:
//! - changes made by this process evict entries as they commit;
//! - on PostgreSQL, changes made by other replicas arrive through `LISTEN/NOTIFY` (see
//!   [`crate::session_watch`]), and entries are trusted for longer only while that channel is
//!   proven alive (its own pings come back) and has not been down since the entry was read;
//! - otherwise (SQLite, or the channel down) an entry is re-checked after [`UNWATCHED_TTL`]
//!   (and used for up to twice that by requests arriving while another re-checks it, below).
//!
//! A read that raced with an eviction is not cached: every eviction bumps an epoch, and an entry
//! read from the database is kept only if the epoch did not move while it was being read.
//!
//! When an entry falls due (for its re-check, or for recording the session's activity), every
//! request of that session arriving at that moment would otherwise ask the database the same
//! question at once: on the edge under load, hundreds of reads, or on SQLite hundreds of queued
//! writes, every half second. One request asks (a [`Lead`]). The others go on with the entry
//! while it is [`recent`](SessionCache::recent) (the session cannot have ended in this process:
//! that would have removed it), or else wait for the lead's answer and take it as theirs.

use crate::Session;
use stackgate_identity::Uuid;
use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How long an entry is trusted when no live notification channel vouches for it.
pub(crate) const UNWATCHED_TTL: Duration = Duration::from_millis(500);
/// The notification channel counts as alive while the newest ping that came back through it was
/// sent this recently. Measured from sending, so a channel that delivers late (and so would
/// deliver sign-offs late) stops vouching as soon as it lags this much.
pub(crate) const WATCH_FRESHNESS: Duration = Duration::from_millis(1000);
/// Above this many entries the cache starts over rather than grow without bound.
const MAX_ENTRIES: usize = 100_000;

/// What the database said about a session: live (as this), or not.
pub(crate) type Answer = Option<std::sync::Arc<Session>>;

/// A lead's answer, with the eviction epoch from before it asked: a live answer is good for
/// another request only if nothing was evicted since (it could predate a sign-off).
#[derive(Clone)]
pub(crate) struct Answered {
    pub(crate) answer: Answer,
    pub(crate) epoch: u64,
}

/// Who asks the database about a session whose entry is missing or due.
pub(crate) enum Turn<'a> {
    /// This request: the others wait for its answer.
    Lead(Lead<'a>),
    /// Another request is asking already: its answer arrives here, or the channel closes
    /// without one if it failed or was cancelled.
    Wait(tokio::sync::watch::Receiver<Option<Answered>>),
}

/// Held by the one request asking the database about a session.
pub(crate) struct Lead<'a> {
    cache: &'a SessionCache,
    key: String,
    epoch: u64,
    answer: tokio::sync::watch::Sender<Option<Answered>>,
}

impl Lead<'_> {
    /// Hands the database's answer to the requests waiting for it.
    pub(crate) fn answer(&self, answer: &Answer) {
        self.answer.send_replace(Some(Answered {
            answer: answer.clone(),
            epoch: self.epoch,
        }));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Ok(mut asking) = self.cache.asking.lock() {
            asking.remove(&self.key);
        }
        // The sender goes after this: requests still waiting wake to a closed channel.
    }
}

#[derive(Clone)]
struct Entry {
    /// Shared, so a hit costs a reference count, not a copy.
    session: std::sync::Arc<Session>,
    read_at: Instant,
    /// The watch generation the entry was read under (0: unwatched).
    generation: u64,
    /// Unix time the database last recorded activity on the session.
    last_seen_at: i64,
}

/// What a lookup found.
pub(crate) enum Cached {
    Hit {
        session: std::sync::Arc<Session>,
        last_seen_at: i64,
    },
    Miss {
        epoch: u64,
    },
}

/// Sessions that may have ended, announced to whoever holds on to one for longer than a request
/// (the edge's WebSocket tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    Session(Uuid),
    /// Every session of this user (disabled, deleted, groups changed).
    User(Uuid),
    /// Any session at all (a group changed, notifications were lost).
    All,
}

impl SessionChange {
    /// Whether `session` may be among those this change ended.
    pub fn concerns(&self, session: &Session) -> bool {
        self.concerns_ids(session.id, session.user.id)
    }

    /// Whether the session `session` of user `user` may be among those this change ended.
    pub fn concerns_ids(&self, session: Uuid, user: Uuid) -> bool {
        match *self {
            SessionChange::Session(id) => session == id,
            SessionChange::User(id) => user == id,
            SessionChange::All => true,
        }
    }
}

/// Changes queued for a slow listener before it is told it missed some (and re-checks).
const CHANGES_BUFFERED: usize = 1024;

pub(crate) struct SessionCache {
    /// Bumped whenever routes or access policies may have changed (here or on another replica).
    proxy_changes: tokio::sync::watch::Sender<u64>,
    changes: tokio::sync::broadcast::Sender<SessionChange>,
    entries: RwLock<HashMap<String, Entry>>,
    epoch: AtomicU64,
    /// The sessions some request is asking the database about, by cache key.
    asking: std::sync::Mutex<HashMap<String, tokio::sync::watch::Receiver<Option<Answered>>>>,
    /// How many times the database was asked about a session (a read or a recorded activity).
    database_lookups: AtomicU64,
    watch: RwLock<WatchState>,
}

#[derive(Clone, Copy)]
struct WatchState {
    /// Bumped at every (re)connection; 0 while down.
    generation: u64,
    last_ping: Option<Instant>,
    reconnects: u64,
}

/// The notification channel's state, and how often the cache had to ask the database, for
/// metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStatus {
    pub connected: bool,
    /// Times the channel was (re)established since start.
    pub connections: u64,
    /// Times a session lookup went to the database (a read, or recording activity) since start.
    pub database_lookups: u64,
}

impl SessionCache {
    pub(crate) fn new() -> Self {
        Self {
            proxy_changes: tokio::sync::watch::Sender::new(0),
            changes: tokio::sync::broadcast::Sender::new(CHANGES_BUFFERED),
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            asking: std::sync::Mutex::new(HashMap::new()),
            database_lookups: AtomicU64::new(0),
            watch: RwLock::new(WatchState {
                generation: 0,
                last_ping: None,
                reconnects: 0,
            }),
        }
    }

    pub(crate) fn proxy_changed(&self) {
        self.proxy_changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn proxy_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.proxy_changes.subscribe()
    }

    fn live_generation(&self) -> u64 {
        let watch = self.watch.read().map(|w| *w).unwrap_or(WatchState {
            generation: 0,
            last_ping: None,
            reconnects: 0,
        });
        match watch.last_ping {
            Some(ping) if watch.generation > 0 && ping.elapsed() < WATCH_FRESHNESS => {
                watch.generation
            }
            _ => 0,
        }
    }

    pub(crate) fn get(&self, secret_hash: &str) -> Cached {
        let epoch = self.epoch.load(Ordering::Acquire);
        let entry = self
            .entries
            .read()
            .ok()
            .and_then(|entries| entries.get(secret_hash).cloned());
        let Some(entry) = entry else {
            return Cached::Miss { epoch };
        };
        let generation = self.live_generation();
        let vouched = generation != 0 && entry.generation == generation;
        if vouched || entry.read_at.elapsed() < UNWATCHED_TTL {
            Cached::Hit {
                session: entry.session,
                last_seen_at: entry.last_seen_at,
            }
        } else {
            Cached::Miss { epoch }
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The entry for `key`, for a request to use while another re-checks it: vouched for, or
    /// read less than twice [`UNWATCHED_TTL`] ago (so a lead that keeps failing does not make
    /// an old answer last).
    pub(crate) fn recent(&self, key: &str) -> Option<(std::sync::Arc<Session>, i64)> {
        let entry = self.entries.read().ok()?.get(key).cloned()?;
        let generation = self.live_generation();
        let vouched = generation != 0 && entry.generation == generation;
        (vouched || entry.read_at.elapsed() < 2 * UNWATCHED_TTL)
            .then_some((entry.session, entry.last_seen_at))
    }

    /// The lead for asking the database about `key`, or what to wait on if another request
    /// has it. `None` if the map is unusable (a panic while it was held): then ask anyway.
    pub(crate) fn turn(&self, key: &str) -> Option<Turn<'_>> {
        let mut asking = self.asking.lock().ok()?;
        if let Some(done) = asking.get(key) {
            return Some(Turn::Wait(done.clone()));
        }
        let (answer, waited_on) = tokio::sync::watch::channel(None);
        asking.insert(key.to_owned(), waited_on);
        Some(Turn::Lead(Lead {
            cache: self,
            key: key.to_owned(),
            epoch: self.epoch(),
            answer,
        }))
    }

    pub(crate) fn counted_database_lookup(&self) {
        self.database_lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a session read from the database, unless an eviction happened since `epoch`.
    pub(crate) fn put(
        &self,
        secret_hash: &str,
        session: std::sync::Arc<Session>,
        last_seen_at: i64,
        epoch: u64,
    ) {
        let generation = self.live_generation();
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the write lock, which evictions also take: no eviction can slip in
        // between this check and the insert.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            secret_hash.to_owned(),
            Entry {
                session,
                read_at: Instant::now(),
                generation,
                last_seen_at,
            },
        );
    }

    /// Records that the database saw activity on the session.
    pub(crate) fn touched(&self, secret_hash: &str, last_seen_at: i64) {
        if let Ok(mut entries) = self.entries.write()
            && let Some(entry) = entries.get_mut(secret_hash)
        {
            entry.last_seen_at = last_seen_at;
        }
    }

    fn evict_where(&self, drop: impl Fn(&Entry) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.retain(|_, entry| !drop(entry));
        }
    }

    pub(crate) fn evict_secret(&self, secret_hash: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.remove(secret_hash);
        }
    }

    pub(crate) fn evict_session(&self, id: Uuid) {
        self.evict_where(|entry| entry.session.id == id);
        self.announce(SessionChange::Session(id));
    }

    pub(crate) fn evict_user(&self, id: Uuid) {
        self.evict_where(|entry| entry.session.user.id == id);
        self.announce(SessionChange::User(id));
    }

    pub(crate) fn evict_all(&self) {
        self.evict_where(|_| true);
        self.announce(SessionChange::All);
    }

    fn announce(&self, change: SessionChange) {
        // No receiver (no open tunnel) is the common case, not an error.
        let _ = self.changes.send(change);
    }

    pub(crate) fn changes(&self) -> tokio::sync::broadcast::Receiver<SessionChange> {
        self.changes.subscribe()
    }

    /// The channel is up again: nothing read before can be vouched for by it.
    pub(crate) fn watch_connected(&self) {
        if let Ok(mut watch) = self.watch.write() {
            watch.reconnects += 1;
            watch.generation = watch.reconnects;
            watch.last_ping = None;
        }
        self.evict_all();
        // Changes made while the channel was down went unheard.
        self.proxy_changed();
    }

    pub(crate) fn watch_lost(&self) {
        if let Ok(mut watch) = self.watch.write() {
            watch.generation = 0;
            watch.last_ping = None;
        }
    }

    /// A ping sent at `sent` came back through the channel.
    pub(crate) fn watch_ping(&self, sent: Instant) {
        if let Ok(mut watch) = self.watch.write()
            && watch.generation != 0
            && watch.last_ping.is_none_or(|last| last < sent)
        {
            watch.last_ping = Some(sent);
        }
    }

    pub(crate) fn watch_status(&self) -> WatchStatus {
        WatchStatus {
            connected: self.live_generation() != 0,
            connections: self.watch.read().map(|w| w.reconnects).unwrap_or(0),
            database_lookups: self.database_lookups.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackgate_identity::{OffsetDateTime, User};

    fn session(user: Uuid) -> std::sync::Arc<Session> {
        std::sync::Arc::new(Session {
            id: Uuid::new_v4(),
            user: User {
                id: user,
                username: "ana".into(),
                email: None,
                display_name: "Ana".into(),
                disabled: false,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            is_admin: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            auth_time: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            amr: "pwd".into(),
            group_mfa_policy: stackgate_identity::MfaPolicy::Optional,
            groups: Vec::new(),
        })
    }

    fn hit(cache: &SessionCache, key: &str) -> bool {
        matches!(cache.get(key), Cached::Hit { .. })
    }

    fn epoch(cache: &SessionCache, key: &str) -> u64 {
        match cache.get(key) {
            Cached::Miss { epoch } => epoch,
            Cached::Hit { .. } => panic!("expected a miss"),
        }
    }

    #[test]
    fn a_read_that_raced_an_eviction_is_not_kept() {
        let cache = SessionCache::new();
        let e = epoch(&cache, "a");
        cache.evict_user(Uuid::new_v4());
        cache.put("a", session(Uuid::new_v4()), 0, e);
        assert!(!hit(&cache, "a"));
        let e = epoch(&cache, "a");
        cache.put("a", session(Uuid::new_v4()), 0, e);
        assert!(hit(&cache, "a"));
    }

    #[test]
    fn evictions_by_session_and_user() {
        let cache = SessionCache::new();
        let user = Uuid::new_v4();
        let first = session(user);
        let first_id = first.id;
        cache.put("a", first, 0, epoch(&cache, "a"));
        cache.put("b", session(user), 0, epoch(&cache, "b"));
        cache.put("c", session(Uuid::new_v4()), 0, epoch(&cache, "c"));
        cache.evict_session(first_id);
        assert!(!hit(&cache, "a"));
        assert!(hit(&cache, "b"));
        cache.evict_user(user);
        assert!(!hit(&cache, "b"));
        assert!(hit(&cache, "c"));
        cache.evict_secret("c");
        assert!(!hit(&cache, "c"));
    }

    #[test]
    fn unwatched_entries_expire_and_watched_ones_need_a_live_channel() {
        let cache = SessionCache::new();
        cache.put("a", session(Uuid::new_v4()), 0, epoch(&cache, "a"));
        assert!(hit(&cache, "a"));
        std::thread::sleep(UNWATCHED_TTL);
        assert!(!hit(&cache, "a"), "unwatched entries are re-checked");

        cache.watch_connected();
        cache.watch_ping(Instant::now());
        cache.put("a", session(Uuid::new_v4()), 0, epoch(&cache, "a"));
        std::thread::sleep(UNWATCHED_TTL);
        cache.watch_ping(Instant::now());
        assert!(hit(&cache, "a"), "a live channel vouches for the entry");

        cache.watch_lost();
        assert!(!hit(&cache, "a"), "a lost channel vouches for nothing");
        cache.watch_connected();
        cache.watch_ping(Instant::now());
        assert!(
            !hit(&cache, "a"),
            "nor does a new one for what was read before"
        );
    }
}
