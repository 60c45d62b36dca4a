//! Telling the upstream who is calling: plain headers (user, email, groups) for apps that trust
//! their network, and a signed assertion (a short-lived JWT, audience = the app) for apps that
//! verify. Whatever the client sent under those names is removed first, always, so a client can
//! never speak for someone else.

use hyper::{HeaderMap, header::HeaderName, header::HeaderValue};
use serde::Serialize;
use stackgate_identity::Uuid;
use stackgate_oidc::SigningAlg;
use stackgate_store::{Session, SessionChange};
use stackgate_web::oidc::keyring::Keyring;
use std::{collections::HashMap, sync::Mutex};

/// The header names, from config.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub email: HeaderName,
    pub groups: HeaderName,
    pub assertion: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders {
            user: HeaderName::from_static("x-forwarded-user"),
            email: HeaderName::from_static("x-forwarded-email"),
            groups: HeaderName::from_static("x-forwarded-groups"),
            assertion: HeaderName::from_static("x-stackgate-assertion"),
        }
    }
}

impl IdentityHeaders {
    /// Whether `name` is one of the identity headers.
    pub fn is_one(&self, name: &HeaderName) -> bool {
        [&self.user, &self.email, &self.groups, &self.assertion].contains(&name)
    }
}

/// The assertion's `typ`, so it can never pass for an ID or access token (RFC 8725 §3.11).
pub const ASSERTION_TYPE: &str = "stackgate-assertion+jwt";

/// Seconds an assertion is valid.
pub const ASSERTION_LIFETIME: i64 = 60;
/// A cached assertion is reused while it has at least this long left.
const REUSE_WHILE: i64 = 30;
const MAX_CACHED: usize = 50_000;

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    sid: String,
    preferred_username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    groups: &'a [String],
}

/// What the edge tells an app about a session, as header values ready to be sent: shared
/// from the cache, not copied and checked again on each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// `None` where the text cannot be a header value (it is then left out, not mangled).
    user: Option<HeaderValue>,
    email: Option<HeaderValue>,
    groups: Option<HeaderValue>,
    /// `None` when it could not be signed.
    assertion: Option<HeaderValue>,
}

impl Told {
    fn of(session: &Session, assertion: Option<HeaderValue>) -> Self {
        let value = |text: &str| HeaderValue::from_str(text).ok();
        Told {
            user: value(&session.user.username),
            email: session.user.email.as_deref().and_then(value),
            groups: value(&session.groups.join(",")),
            assertion,
        }
    }
}

struct CachedAssertion {
    user: Uuid,
    app: String,
    told: Told,
    exp: i64,
    /// What the token and the header values say, to notice a changed user.
    username: String,
    email: Option<String>,
    groups: Vec<String>,
}

impl CachedAssertion {
    fn still_true(&self, session: &Session, app: &str, now: i64) -> bool {
        self.app == app
            && self.exp - now >= REUSE_WHILE
            && self.username == session.user.username
            && self.email == session.user.email
            && self.groups == session.groups
    }
}

/// Signs assertions, reusing each for half its life (signing costs far more than a lookup),
/// with the identity headers' values.
#[derive(Default)]
pub struct Assertions {
    /// By session: one entry per app the session reached.
    cache: Mutex<HashMap<Uuid, Vec<CachedAssertion>>>,
}

impl Assertions {
    /// What to tell `app` about `session`.
    pub fn told(
        &self,
        keyring: &Keyring,
        issuer: &str,
        session: &Session,
        app: &str,
        now: i64,
    ) -> Told {
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache
                .get(&session.id)
                .and_then(|apps| apps.iter().find(|c| c.still_true(session, app, now)))
        {
            return hit.told.clone();
        }
        let claims = AssertionClaims {
            iss: issuer,
            sub: session.user.id.to_string(),
            aud: app,
            iat: now,
            exp: now + ASSERTION_LIFETIME,
            sid: session.id.to_string(),
            preferred_username: &session.user.username,
            email: session.user.email.as_deref(),
            groups: &session.groups,
        };
        let keys = keyring.keys();
        let token = match keys
            .signer(SigningAlg::ES256)
            .and_then(|key| stackgate_oidc::sign(key, ASSERTION_TYPE, &claims))
        {
            Ok(token) => token,
            Err(err) => {
                tracing::error!(error = %err, "cannot sign an identity assertion");
                return Told::of(session, None);
            }
        };
        // A compact JWT is base64url and dots: always a valid header value.
        let Ok(token) = HeaderValue::from_str(&token) else {
            return Told::of(session, None);
        };
        let told = Told::of(session, Some(token));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, apps| apps.iter().any(|c| c.exp - now >= REUSE_WHILE));
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            let apps = cache.entry(session.id).or_default();
            apps.retain(|c| c.app != app);
            apps.push(CachedAssertion {
                user: session.user.id,
                app: app.to_owned(),
                told: told.clone(),
                exp: now + ASSERTION_LIFETIME,
                username: session.user.username.clone(),
                email: session.user.email.clone(),
                groups: session.groups.clone(),
            });
        }
        told
    }
}

impl Assertions {
    /// Drops the assertions of the sessions `change` may have ended: they are never reused.
    pub fn forget(&self, change: SessionChange) {
        if let Ok(mut cache) = self.cache.lock() {
            match change {
                SessionChange::Session(id) => {
                    cache.remove(&id);
                }
                SessionChange::User(user) => {
                    cache.retain(|_, apps| apps.iter().all(|c| c.user != user));
                }
                SessionChange::All => cache.clear(),
            }
        }
    }

    /// Drops assertions too old to be reused, so the cache holds only the sessions seen in the
    /// last [`ASSERTION_LIFETIME`] seconds.
    pub fn sweep(&self, now: i64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, apps| {
                apps.retain(|c| c.exp - now >= REUSE_WHILE);
                !apps.is_empty()
            });
        }
    }

    #[cfg(test)]
    fn cached_sessions(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// Adds the identity headers (after `sanitise_request` dropped any sent).
pub fn add_identity(headers: &mut HeaderMap, names: &IdentityHeaders, told: Told) {
    for (name, value) in [
        (&names.user, told.user),
        (&names.email, told.email),
        (&names.groups, told.groups),
        (&names.assertion, told.assertion),
    ] {
        if let Some(value) = value {
            headers.insert(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::session;
    use stackgate_oidc::MasterKey;
    use stackgate_store::{Backend, testing::TestDatabase};

    /// A keyring on a database of its own (kept while the keyring is used).
    async fn keyring() -> (TestDatabase, Keyring) {
        let db = TestDatabase::create(Backend::Sqlite)
            .await
            .unwrap()
            .unwrap();
        let store = db.store_now().await.unwrap();
        let master = MasterKey::from_base64(&MasterKey::generate().unwrap()).unwrap();
        (db, Keyring::open(store, master).await.unwrap())
    }

    #[tokio::test]
    async fn assertions_are_reused_then_forgotten_with_their_session_or_age() {
        let (_db, keyring) = keyring().await;
        let assertions = Assertions::default();
        let issuer = "https://login.example.org";
        let ana = session("ana", &["staff"]);
        let bo = session("bo", &["staff"]);
        let first = assertions
            .told(&keyring, issuer, &ana, "wiki", 1000)
            .assertion
            .unwrap();
        let again = assertions
            .told(&keyring, issuer, &ana, "wiki", 1010)
            .assertion
            .unwrap();
        assert_eq!(first, again, "reused while it has long enough left");
        assertions
            .told(&keyring, issuer, &ana, "board", 1010)
            .assertion
            .unwrap();
        assertions
            .told(&keyring, issuer, &bo, "wiki", 1040)
            .assertion
            .unwrap();
        assert_eq!(assertions.cached_sessions(), 2);
        // Ana's session ends: hers go at once.
        assertions.forget(SessionChange::Session(ana.id));
        assert_eq!(assertions.cached_sessions(), 1);
        // Bo's are dropped once too old to be reused.
        assertions.sweep(1040 + ASSERTION_LIFETIME - REUSE_WHILE);
        assert_eq!(assertions.cached_sessions(), 1);
        assertions.sweep(1040 + ASSERTION_LIFETIME - REUSE_WHILE + 1);
        assert_eq!(assertions.cached_sessions(), 0);
        assertions
            .told(&keyring, issuer, &bo, "wiki", 2000)
            .assertion
            .unwrap();
        assertions.forget(SessionChange::User(bo.user.id));
        assert_eq!(assertions.cached_sessions(), 0);
    }

    #[tokio::test]
    async fn identity_headers_follow_a_changed_user_and_leave_out_what_cannot_be_sent() {
        let (_db, keyring) = keyring().await;
        let assertions = Assertions::default();
        let names = IdentityHeaders::default();
        let sent = |session: &Session| {
            let mut headers = HeaderMap::new();
            headers.insert("x-app", HeaderValue::from_static("kept"));
            let told =
                assertions.told(&keyring, "https://login.example.org", session, "wiki", 1000);
            add_identity(&mut headers, &names, told);
            headers
        };
        let mut ana = session("ana", &["staff"]);
        let before = sent(&ana);
        assert_eq!(before[&names.user], "ana");
        assert_eq!(before[&names.email], "ana@example.org");
        assert_eq!(before[&names.groups], "staff");
        assert!(before.contains_key(&names.assertion));
        assert_eq!(before["x-app"], "kept");
        // Asked again, the cached values go out: the same headers, the same assertion.
        assert_eq!(sent(&ana), before);
        // Same session, moved into another group, then renamed: nothing cached is reused.
        ana.groups.push("editors".into());
        assert_eq!(sent(&ana)[&names.groups], "staff,editors");
        ana.user.username = "ana.b".into();
        let renamed = sent(&ana);
        assert_eq!(renamed[&names.user], "ana.b");
        assert_eq!(renamed[&names.groups], "staff,editors");
        // A value no header can carry is left out, not mangled; the rest still go.
        ana.user.email = Some("ana\n@example.org".into());
        let odd = sent(&ana);
        assert!(!odd.contains_key(&names.email));
        assert_eq!(odd[&names.user], "ana.b");
    }
}
