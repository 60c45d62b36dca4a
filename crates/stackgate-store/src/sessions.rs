//! Browser sessions (the SSO session). The cookie holds a secret; the store keeps its digest and
//! a separate public id (`sid`), so nothing read from the database can be replayed as a cookie.

use crate::{
    Store, StoreError,
    audit::write_audit,
    pool::{BeginWrite, on_pool, on_pool_write},
    rows::{self, UserRow},
    session_cache::{Answered, Cached, Turn},
};
use stackgate_identity::{ADMINS_GROUP_ID, AuditEntry, MfaPolicy, OffsetDateTime, User, Uuid};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub secret_hash: String,
    /// Absolute lifetime, in seconds from now.
    pub lifetime: i64,
    /// Authentication methods used, space-separated (`pwd`, later `hwk`, `otp`, ...).
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user: User,
    pub is_admin: bool,
    pub created_at: OffsetDateTime,
    pub auth_time: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub amr: String,
    /// The strictest sign-in policy among the user's groups.
    pub group_mfa_policy: MfaPolicy,
    /// The names of the user's groups, sorted.
    pub groups: Vec<String>,
}

/// A session as its owner (or an admin) sees it in a list.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Which cookie a session is looked up by.
#[derive(Clone, Copy)]
pub(crate) enum SessionKey<'a> {
    /// The SSO cookie on the login host.
    Sso { secret_hash: &'a str },
    /// The edge proxy's cookie on one app's host.
    Proxy { secret_hash: &'a str, host: &'a str },
}

impl SessionKey<'_> {
    /// The cache key; the two kinds can never collide.
    fn cache_key(&self) -> String {
        match self {
            SessionKey::Sso { secret_hash } => (*secret_hash).to_owned(),
            SessionKey::Proxy { secret_hash, host } => {
                // Built on every proxied request: pieces pushed cost a tenth of what `format!`
                // spends going through the formatter.
                let mut key = String::with_capacity(7 + host.len() + secret_hash.len());
                for piece in ["proxy ", host, " ", secret_hash] {
                    key.push_str(piece);
                }
                key
            }
        }
    }
}

/// `last_seen_at` is refreshed at most this often.
const TOUCH_GRANULARITY: i64 = 60;

/// Times a request waits for another to ask the database about its session before it asks.
const MAX_WAITS: usize = 3;

/// Where a cached session stands, read once for both the fast path and the database's.
enum Standing {
    /// Not cached; the cache's eviction epoch when it was looked for.
    Unknown {
        epoch: u64,
    },
    Expired,
    /// Not used for longer than the idle timeout here (perhaps busy on another replica).
    Idle,
    /// Live, its activity due to be recorded.
    TouchDue(Arc<Session>),
    /// Live, its activity recorded recently.
    Fresh(Arc<Session>),
}

impl Store {
    pub async fn create_session(
        &self,
        new: &NewSession,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let now = self.now();
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr, ip, user_agent) \
                 VALUES ($1, $2, $3, $4, $4, $5, $4, $6, $7, $8)",
            )
            .bind(new.id.to_string())
            .bind(&new.secret_hash)
            .bind(new.user_id.to_string())
            .bind(now)
            .bind(now + new.lifetime)
            .bind(&new.amr)
            .bind(&new.ip)
            .bind(&new.user_agent)
            .execute(&mut *tx)
            .await?;
            write_audit!(&mut *tx, audit, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live session for a cookie secret's digest: not expired, not idle longer than
    /// `idle_timeout` seconds, its user enabled. Answered from this process's cache when it can
    /// vouch for the session (see [`crate::session_cache`]).
    pub async fn session_by_secret(
        &self,
        secret_hash: &str,
        idle_timeout: i64,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self
            .live_session(SessionKey::Sso { secret_hash }, idle_timeout)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    pub(crate) async fn live_session(
        &self,
        key: SessionKey<'_>,
        idle_timeout: i64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let cache_key = key.cache_key();
        if let Some(known) = self.cached_session(&cache_key, idle_timeout) {
            return Ok(known);
        }
        // One request of this session asks the database. The others go on with what this
        // process knew a moment ago, if it knew the session live and not idle; or else take
        // the lead's answer. If it gave up (failed, or was cancelled) or its answer may be out
        // of date, they try again: one of them leads the next time.
        let mut lead = None;
        for _ in 0..MAX_WAITS {
            let mut answer = match self.sessions.turn(&cache_key) {
                Some(Turn::Wait(answer)) => answer,
                Some(Turn::Lead(mine)) => {
                    lead = Some(mine);
                    break;
                }
                None => break,
            };
            let now = self.now();
            if let Some((session, last_seen_at)) = self.sessions.recent(&cache_key)
                && session.expires_at.unix_timestamp() > now
                && last_seen_at > now - idle_timeout
            {
                return Ok(Some(session));
            }
            let answered = answer
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|answered| (*answered).clone());
            match answered {
                Some(Answered { answer: None, .. }) => return Ok(None),
                Some(Answered { answer, epoch }) if epoch == self.sessions.epoch() => {
                    return Ok(answer);
                }
                _ => {}
            }
            if let Some(known) = self.cached_session(&cache_key, idle_timeout) {
                return Ok(known);
            }
        }
        // Boxed: the queries' state is only needed on this path, not in every request.
        let asked = Box::pin(self.ask_database(key, &cache_key, idle_timeout)).await;
        if let (Some(lead), Ok(answer)) = (&lead, &asked) {
            lead.answer(answer);
        }
        asked
    }

    /// What the cache alone can say: `Some(None)` for an expired session, `Some(Some(_))` for
    /// a live one whose activity was recorded recently; `None` when the database must be asked.
    fn cached_session(&self, cache_key: &str, idle_timeout: i64) -> Option<Option<Arc<Session>>> {
        match self.standing(cache_key, idle_timeout, self.now()) {
            Standing::Expired => Some(None),
            Standing::Fresh(session) => Some(Some(session)),
            Standing::Unknown { .. } | Standing::Idle | Standing::TouchDue(_) => None,
        }
    }

    /// Where the cache's entry for `cache_key` stands at `now`. An expired entry is evicted.
    fn standing(&self, cache_key: &str, idle_timeout: i64, now: i64) -> Standing {
        match self.sessions.get(cache_key) {
            Cached::Hit {
                session,
                last_seen_at,
            } => {
                if session.expires_at.unix_timestamp() <= now {
                    self.sessions.evict_secret(cache_key);
                    Standing::Expired
                } else if last_seen_at <= now - idle_timeout {
                    Standing::Idle
                } else if last_seen_at < now - TOUCH_GRANULARITY {
                    Standing::TouchDue(session)
                } else {
                    Standing::Fresh(session)
                }
            }
            Cached::Miss { epoch } => Standing::Unknown { epoch },
        }
    }

    async fn ask_database(
        &self,
        key: SessionKey<'_>,
        cache_key: &str,
        idle_timeout: i64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let now = self.now();
        let epoch = match self.standing(cache_key, idle_timeout, now) {
            Standing::Expired => return Ok(None),
            Standing::Fresh(session) => return Ok(Some(session)),
            Standing::TouchDue(session) => {
                // The touch doubles as a re-check that the session still exists.
                if !self.touch_session(session.id, now).await? {
                    self.sessions.evict_secret(cache_key);
                    return Ok(None);
                }
                self.sessions.touched(cache_key, now);
                return Ok(Some(session));
            }
            Standing::Idle => {
                // Idle here, perhaps busy on another replica: the database decides.
                self.sessions.evict_secret(cache_key);
                self.sessions.epoch()
            }
            Standing::Unknown { epoch } => epoch,
        };
        self.read_and_cache(key, idle_timeout, now, epoch).await
    }

    async fn read_and_cache(
        &self,
        key: SessionKey<'_>,
        idle_timeout: i64,
        now: i64,
        epoch: u64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let found = self.read_session(key, idle_timeout, now).await?;
        let Some((session, mut last_seen_at)) = found else {
            return Ok(None);
        };
        if last_seen_at < now - TOUCH_GRANULARITY {
            // Gone since it was read (ended by another process).
            if !self.touch_session(session.id, now).await? {
                return Ok(None);
            }
            last_seen_at = now;
        }
        let session = Arc::new(session);
        self.sessions
            .put(&key.cache_key(), session.clone(), last_seen_at, epoch);
        Ok(Some(session))
    }

    pub(crate) fn evict_session_id(&self, id: &str) {
        match Uuid::parse_str(id) {
            Ok(id) => self.sessions.evict_session(id),
            Err(_) => self.sessions.evict_all(),
        }
    }

    /// Records activity on a session; returns whether it still exists.
    async fn touch_session(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        self.sessions.counted_database_lookup();
        let touched = on_pool_write!(self, |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(touched > 0)
    }

    async fn read_session(
        &self,
        key: SessionKey<'_>,
        idle_timeout: i64,
        now: i64,
    ) -> Result<Option<(Session, i64)>, StoreError> {
        self.sessions.counted_database_lookup();
        #[derive(sqlx::FromRow)]
        struct Row {
            session_id: String,
            session_created_at: i64,
            auth_time: i64,
            expires_at: i64,
            last_seen_at: i64,
            amr: String,
            admin: i64,
            mfa_level: i64,
            #[sqlx(flatten)]
            user: UserRow,
        }
        macro_rules! select_session {
            ($from:literal) => {
                concat!(
                    "SELECT s.id AS session_id, s.created_at AS session_created_at, s.auth_time, s.expires_at, \
                       s.last_seen_at, s.amr, \
                       (SELECT COUNT(*) FROM memberships m WHERE m.user_id = u.id AND m.group_id = $2) AS admin, \
                       CAST((SELECT COALESCE(MAX(CASE g.mfa_policy WHEN 'phishing_resistant' THEN 2 WHEN 'required' THEN 1 ELSE 0 END), 0) \
                         FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = u.id) AS BIGINT) AS mfa_level, \
                       u.id, u.username, u.email, u.display_name, u.disabled, u.created_at, u.updated_at ",
                    $from,
                    " AND s.expires_at > $3 AND s.last_seen_at > $4 AND u.disabled = FALSE"
                )
            };
        }
        let (sql, secret_hash, host) = match key {
            SessionKey::Sso { secret_hash } => (
                select_session!(
                    "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1 AND $5 = ''"
                ),
                secret_hash,
                "",
            ),
            SessionKey::Proxy { secret_hash, host } => (
                select_session!(
                    "FROM proxy_sessions p JOIN sessions s ON s.id = p.session_id JOIN users u ON u.id = s.user_id \
                     WHERE p.secret_hash = $1 AND p.host = $5"
                ),
                secret_hash,
                host,
            ),
        };
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(secret_hash)
                .bind(ADMINS_GROUP_ID.to_string())
                .bind(now)
                .bind(now - idle_timeout)
                .bind(host)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let groups: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT g.name FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1 ORDER BY g.name",
            )
            .bind(&row.user.id)
            .fetch_all(pool)
            .await?
        });
        let session = Session {
            id: rows::uuid(&row.session_id, "sessions.id")?,
            user: row.user.try_into()?,
            is_admin: row.admin > 0,
            created_at: rows::time(row.session_created_at, "sessions.created_at")?,
            auth_time: rows::time(row.auth_time, "sessions.auth_time")?,
            expires_at: rows::time(row.expires_at, "sessions.expires_at")?,
            amr: row.amr,
            group_mfa_policy: match row.mfa_level {
                2 => MfaPolicy::PhishingResistant,
                1 => MfaPolicy::Required,
                _ => MfaPolicy::Optional,
            },
            groups: groups.into_iter().map(|(name,)| name).collect(),
        };
        Ok(Some((session, row.last_seen_at)))
    }

    /// Rotates a session's secret and records the stronger methods it was just proven with,
    /// keeping its id (`sid`), so apps signed in under it stay signed in.
    pub async fn step_up_session(
        &self,
        old_secret_hash: &str,
        new_secret_hash: &str,
        amr: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let done = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done: Option<(String,)> = sqlx::query_as(
                "UPDATE sessions SET secret_hash = $2, amr = $3, auth_time = $4, last_seen_at = $4 WHERE secret_hash = $1 \
                 RETURNING id",
            )
            .bind(old_secret_hash)
            .bind(new_secret_hash)
            .bind(amr)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            done
        });
        self.sessions.evict_secret(old_secret_hash);
        // The proxy's entries for the session carry the old methods.
        if let Some((id,)) = &done {
            self.evict_session_id(id);
        }
        Ok(done.is_some())
    }

    /// A person's live sessions, most recently used first.
    pub async fn sessions_of(
        &self,
        user: Uuid,
        idle_timeout: i64,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let now = self.now();
        type Row = (
            String,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, created_at, last_seen_at, expires_at, amr, ip, user_agent FROM sessions \
                 WHERE user_id = $1 AND expires_at > $2 AND last_seen_at > $3 \
                 ORDER BY last_seen_at DESC, created_at DESC",
            )
            .bind(user.to_string())
            .bind(now)
            .bind(now - idle_timeout)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(id, created, seen, expires, amr, ip, user_agent)| {
                Ok(SessionSummary {
                    id: rows::uuid(&id, "sessions.id")?,
                    created_at: rows::time(created, "sessions.created_at")?,
                    last_seen_at: rows::time(seen, "sessions.last_seen_at")?,
                    expires_at: rows::time(expires, "sessions.expires_at")?,
                    amr,
                    ip,
                    user_agent,
                })
            })
            .collect()
    }

    /// Ends one session; returns whether it existed.
    pub async fn end_session(
        &self,
        secret_hash: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let ended = on_pool_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let ended: Option<(String,)> =
                sqlx::query_as("DELETE FROM sessions WHERE secret_hash = $1 RETURNING id")
                    .bind(secret_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            if ended.is_some() {
                write_audit!(&mut *tx, audit, now);
            }
            tx.commit().await?;
            ended
        });
        self.sessions.evict_secret(secret_hash);
        // The proxy's entries for the same session, on every app host.
        if let Some((id,)) = &ended {
            self.evict_session_id(id);
        }
        Ok(ended.is_some())
    }
}
