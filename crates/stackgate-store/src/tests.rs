//! Store tests. Each runs once on SQLite and once on PostgreSQL (`<name>::sqlite`,
//! `<name>::postgres`), with a fresh database per test.

use crate::{
    AuditFilter, Backend, NewSession, Store, StoreError, UserFilter, testing::TestDatabase,
};
use stackgate_identity::{
    ADMINS_GROUP_ID, Actor, AuditEntry, Clock, FixedClock, GroupPatch, NewGroup, NewUser,
    PasswordHash, SecretToken, Target, UserPatch, Uuid,
};
use std::sync::Arc;

/// Declares `mod $name { sqlite, postgres }`, each calling `$body(store, clock)`.
macro_rules! on_both_backends {
    ($($name:ident => $body:expr;)+) => {$(
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() { run(Backend::Sqlite, $body).await }
            #[tokio::test]
            async fn postgres() { run(Backend::Postgres, $body).await }
        }
    )+};
}

async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Store, FixedClock) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = TestDatabase::create(backend).await.unwrap() else {
        return;
    };
    let clock = FixedClock::at(1_750_000_000);
    let store = db
        .store(Arc::new(clock.clone()) as Arc<dyn Clock>)
        .await
        .unwrap();
    body(store.clone(), clock).await;
    store.close().await;
}

fn cli() -> Actor {
    Actor::system("test")
}

fn user_entry(user: &NewUser) -> AuditEntry {
    cli().entry(
        "user.create",
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    )
}

async fn add_user(store: &Store, name: &str) -> Uuid {
    let user = NewUser::parse(name, Some(&format!("{name}@example.org")), None).unwrap();
    store
        .create_user(&user, None, &[], &user_entry(&user))
        .await
        .unwrap()
        .id
}

async fn audit_count(store: &Store, action: &str) -> usize {
    store
        .list_audit(&AuditFilter {
            action: Some(action.into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

on_both_backends! {
    duplicate_username_is_a_conflict_and_writes_nothing => |store: Store, _| async move {
        add_user(&store, "ana").await;
        let again = NewUser::parse("ANA", None, None).unwrap();
        let err = store.create_user(&again, None, &[], &user_entry(&again)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { field: "username", .. }), "{err:?}");
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert_eq!(audit_count(&store, "user.create").await, 1, "no audit entry for a refused change");
    };

    duplicate_email_is_a_conflict => |store: Store, _| async move {
        add_user(&store, "ana").await;
        let other = NewUser::parse("bea", Some("Ana@Example.org"), None).unwrap();
        let err = store.create_user(&other, None, &[], &user_entry(&other)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { field: "email", .. }), "{err:?}");
    };

    creating_a_user_in_an_unknown_group_writes_nothing => |store: Store, _| async move {
        let user = NewUser::parse("ana", None, None).unwrap();
        let err = store.create_user(&user, None, &[Uuid::new_v4()], &user_entry(&user)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound("group")), "{err:?}");
        assert_eq!(store.count_users().await.unwrap(), 0);
        assert_eq!(audit_count(&store, "user.create").await, 0);
    };

    deleting_a_group_removes_its_memberships => |store: Store, _| async move {
        let ana = add_user(&store, "ana").await;
        let group = NewGroup::parse("editors", Some("Newsroom editors")).unwrap();
        let entry = cli().entry("group.create", Target::Group { id: group.id, name: group.name.clone() });
        store.create_group(&group, &entry).await.unwrap();
        assert!(store.add_member(group.id, ana, &entry).await.unwrap());
        assert!(!store.add_member(group.id, ana, &entry).await.unwrap(), "second add is a no-op");
        assert_eq!(store.get_group(group.id).await.unwrap().member_count, 1);
        store.delete_group(group.id, &entry).await.unwrap();
        let orphans: i64 = crate::pool::on_pool!(store, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE group_id = $1")
                .bind(group.id.to_string()).fetch_one(pool).await.unwrap()
        });
        assert_eq!(orphans, 0);
        assert!(store.groups_of(ana).await.unwrap().is_empty());
        assert!(matches!(store.get_group(group.id).await, Err(StoreError::NotFound("group"))));
    };

    foreign_keys_are_enforced => |store: Store, _| async move {
        let result: Result<_, sqlx::Error> = crate::pool::on_pool!(store, |pool| {
            sqlx::query("INSERT INTO memberships (group_id, user_id, created_at) VALUES ($1, $2, 0)")
                .bind(ADMINS_GROUP_ID.to_string()).bind(Uuid::new_v4().to_string())
                .execute(pool).await.map(|_| ())
        });
        let err = result.unwrap_err();
        let sqlx::Error::Database(db) = err else { panic!("{err:?}") };
        assert!(db.is_foreign_key_violation());
    };

    membership_of_unknown_group_or_user_is_not_found => |store: Store, _| async move {
        let ana = add_user(&store, "ana").await;
        let entry = cli().entry("group.add_member", Target::System);
        assert!(matches!(store.add_member(Uuid::new_v4(), ana, &entry).await, Err(StoreError::NotFound("group"))));
        assert!(matches!(store.add_member(ADMINS_GROUP_ID, Uuid::new_v4(), &entry).await, Err(StoreError::NotFound("user"))));
        assert!(matches!(store.remove_member(ADMINS_GROUP_ID, ana, &entry).await, Err(StoreError::NotFound("membership"))));
    };

    builtin_admins_group_is_protected => |store: Store, _| async move {
        let entry = cli().entry("group.delete", Target::System);
        assert!(matches!(store.delete_group(ADMINS_GROUP_ID, &entry).await, Err(StoreError::Refused(_))));
        let rename = GroupPatch::parse(Some("bosses"), None, None).unwrap();
        assert!(matches!(store.update_group(ADMINS_GROUP_ID, &rename, &entry).await, Err(StoreError::Refused(_))));
        let describe = GroupPatch::parse(None, Some("People who run Stackgate"), None).unwrap();
        assert_eq!(store.update_group(ADMINS_GROUP_ID, &describe, &entry).await.unwrap().description, "People who run Stackgate");
    };

    the_last_admin_cannot_be_removed_disabled_or_deleted => |store: Store, _| async move {
        let ana = add_user(&store, "ana").await;
        let entry = cli().entry("x", Target::System);
        store.add_member(ADMINS_GROUP_ID, ana, &entry).await.unwrap();
        assert!(store.admin_exists().await.unwrap());
        assert!(store.is_admin(ana).await.unwrap());
        assert!(matches!(store.remove_member(ADMINS_GROUP_ID, ana, &entry).await, Err(StoreError::Refused(_))));
        assert!(matches!(store.delete_user(ana, &entry).await, Err(StoreError::Refused(_))));
        let disable = UserPatch::parse(None, None, Some(true)).unwrap();
        assert!(matches!(store.update_user(ana, &disable, &entry).await, Err(StoreError::Refused(_))));
        let bea = add_user(&store, "bea").await;
        store.add_member(ADMINS_GROUP_ID, bea, &entry).await.unwrap();
        store.update_user(ana, &disable, &entry).await.unwrap();
        assert!(!store.is_admin(ana).await.unwrap(), "a disabled admin has no admin rights");
        store.delete_user(ana, &entry).await.unwrap();
        assert!(matches!(store.get_user(ana).await, Err(StoreError::NotFound("user"))));
    };

    two_admins_removing_each_other_at_once_leave_one => |store: Store, _| async move {
        let entry = cli().entry("x", Target::System);
        let mut survivor: Option<Uuid> = None;
        for round in 0..5 {
            let ana = add_user(&store, &format!("ana{round}")).await;
            let bea = add_user(&store, &format!("bea{round}")).await;
            store.add_member(ADMINS_GROUP_ID, ana, &entry).await.unwrap();
            store.add_member(ADMINS_GROUP_ID, bea, &entry).await.unwrap();
            if let Some(previous) = survivor {
                store.remove_member(ADMINS_GROUP_ID, previous, &entry).await.unwrap();
            }
            // Now exactly ana and bea are admins, and each is removed at the same time.
            let (a, b) = tokio::join!(
                store.remove_member(ADMINS_GROUP_ID, ana, &entry),
                store.remove_member(ADMINS_GROUP_ID, bea, &entry),
            );
            let refused = [&a, &b].iter().filter(|r| matches!(r, Err(StoreError::Refused(_)))).count();
            assert_eq!(refused, 1, "round {round}: {a:?} {b:?}");
            assert!(store.admin_exists().await.unwrap());
            survivor = Some(if a.is_ok() { bea } else { ana });
        }
    };

    listing_pages_and_filters => |store: Store, _| async move {
        for name in ["carla", "ana", "bea", "dario", "emil"] {
            add_user(&store, name).await;
        }
        let page = store.list_users(&UserFilter { limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(page.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["ana", "bea"]);
        let next = store.list_users(&UserFilter { limit: 2, after: page.next_cursor, ..Default::default() }).await.unwrap();
        assert_eq!(next.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["carla", "dario"]);
        let last = store.list_users(&UserFilter { limit: 2, after: next.next_cursor, ..Default::default() }).await.unwrap();
        assert_eq!(last.users.len(), 1);
        assert_eq!(last.next_cursor, None);
        let found = store.list_users(&UserFilter { limit: 10, query: Some("ARL".into()), ..Default::default() }).await.unwrap();
        assert_eq!(found.users.len(), 1);
        let literal = store.list_users(&UserFilter { limit: 10, query: Some("%".into()), ..Default::default() }).await.unwrap();
        assert!(literal.users.is_empty(), "LIKE wildcards in a query are matched literally");
    };

    api_tokens_live_until_revoked_or_expired => |store: Store, clock: FixedClock| async move {
        let ana = add_user(&store, "ana").await;
        let entry = cli().entry("token.create", Target::System);
        let live = SecretToken::generate("sgt_").unwrap();
        let short = SecretToken::generate("sgt_").unwrap();
        let id = Uuid::new_v4();
        store.create_api_token(id, ana, "deploy", &live.hash, None, &entry).await.unwrap();
        store.create_api_token(Uuid::new_v4(), ana, "short", &short.hash, Some(clock.unix() + 60), &entry).await.unwrap();
        let dup = store.create_api_token(Uuid::new_v4(), ana, "deploy", "other", None, &entry).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict { field: "name", .. }), "{dup:?}");
        let owner = store.authenticate_api_token(&live.hash).await.unwrap().unwrap();
        assert_eq!(owner.user.id, ana);
        assert!(!owner.is_admin);
        assert!(store.authenticate_api_token(&short.hash).await.unwrap().is_some());
        clock.advance(61);
        assert!(store.authenticate_api_token(&short.hash).await.unwrap().is_none(), "expired");
        assert!(store.get_api_token(id).await.unwrap().last_used_at.is_some());
        store.revoke_api_token(id, &entry).await.unwrap();
        assert!(store.authenticate_api_token(&live.hash).await.unwrap().is_none(), "revoked");
        assert!(matches!(store.revoke_api_token(id, &entry).await, Err(StoreError::Refused(_))));
        assert!(store.authenticate_api_token("not-a-token").await.unwrap().is_none());
    };

    setup_link_works_once => |store: Store, clock: FixedClock| async move {
        let link = SecretToken::generate("").unwrap();
        store.issue_setup_token(&link.hash, 3600).await.unwrap();
        assert!(store.setup_token_live(&link.hash).await.unwrap());
        let admin = NewUser::parse("root", None, None).unwrap();
        let hash = PasswordHash::from_stored("$argon2id$v=19$m=19456,t=2,p=1$x$y".into());
        let entry = Actor::system("setup").entry("setup.complete", Target::System);
        let user = store.complete_setup(&link.hash, &admin, &hash, &entry).await.unwrap();
        assert!(store.is_admin(user.id).await.unwrap());
        let again = NewUser::parse("root2", None, None).unwrap();
        assert!(matches!(store.complete_setup(&link.hash, &again, &hash, &entry).await, Err(StoreError::Refused(_))));
        assert!(!store.setup_token_live(&link.hash).await.unwrap());
        // A new link cannot create a second admin behind the first one's back.
        let second = SecretToken::generate("").unwrap();
        store.issue_setup_token(&second.hash, 3600).await.unwrap();
        assert!(matches!(store.complete_setup(&second.hash, &again, &hash, &entry).await, Err(StoreError::Refused(_))));
        assert_eq!(store.count_users().await.unwrap(), 1);
        // And links expire.
        let third = SecretToken::generate("").unwrap();
        store.issue_setup_token(&third.hash, 10).await.unwrap();
        clock.advance(11);
        assert!(!store.setup_token_live(&third.hash).await.unwrap());
    };

    sessions_expire_when_idle_and_end_on_sign_out => |store: Store, clock: FixedClock| async move {
        let ana = add_user(&store, "ana").await;
        let secret = SecretToken::generate("").unwrap();
        let entry = cli().entry("session.create", Target::System);
        let new = NewSession { id: Uuid::new_v4(), user_id: ana, secret_hash: secret.hash.clone(), lifetime: 3600, amr: "pwd".into(), ip: None, user_agent: None };
        store.create_session(&new, &entry).await.unwrap();
        assert_eq!(store.session_by_secret(&secret.hash, 600).await.unwrap().unwrap().user.id, ana);
        clock.advance(599);
        assert!(store.session_by_secret(&secret.hash, 600).await.unwrap().is_some(), "touched");
        clock.advance(599);
        assert!(store.session_by_secret(&secret.hash, 600).await.unwrap().is_some(), "idle timer restarted");
        clock.advance(601);
        assert!(store.session_by_secret(&secret.hash, 600).await.unwrap().is_none(), "idle");
        let other = SecretToken::generate("").unwrap();
        store.create_session(&NewSession { secret_hash: other.hash.clone(), id: Uuid::new_v4(), ..new }, &entry).await.unwrap();
        assert!(store.end_session(&other.hash, &entry).await.unwrap());
        assert!(store.session_by_secret(&other.hash, 600).await.unwrap().is_none());
    };

    a_session_falling_due_is_asked_about_once_however_many_requests_wait => |store: Store, clock: FixedClock| async move {
        let ana = add_user(&store, "ana").await;
        let secret = SecretToken::generate("").unwrap();
        let entry = cli().entry("session.create", Target::System);
        let new = NewSession { id: Uuid::new_v4(), user_id: ana, secret_hash: secret.hash.clone(), lifetime: 3600, amr: "pwd".into(), ip: None, user_agent: None };
        store.create_session(&new, &entry).await.unwrap();
        let lookups = || store.session_watch_status().database_lookups;
        // Fifty requests with one cookie at once, as at the edge under load; the database
        // lookups they cost.
        let at_once = |hash: String| {
            let store = store.clone();
            async move {
                let before = store.session_watch_status().database_lookups;
                let mut requests = tokio::task::JoinSet::new();
                for _ in 0..50 {
                    let (store, hash) = (store.clone(), hash.clone());
                    requests.spawn(async move { store.session_by_secret(&hash, 600).await });
                }
                let mut live = 0;
                while let Some(found) = requests.join_next().await {
                    live += usize::from(found.unwrap().unwrap().is_some());
                }
                (live, store.session_watch_status().database_lookups - before)
            }
        };
        // Read afresh, so what follows does not depend on how long the steps before took.
        let reread = |hash: String| {
            let store = store.clone();
            async move {
                store.sessions.evict_secret(&hash);
                assert!(store.session_by_secret(&hash, 600).await.unwrap().is_some());
            }
        };
        let lead_of = |hash: &str| match store.sessions.turn(hash) {
            Some(crate::session_cache::Turn::Lead(lead)) => lead,
            _ => panic!("nobody else is asking"),
        };
        // One request for `hash`, seen waiting for the lead some other request holds.
        async fn waiting_behind(store: Store, hash: String) -> tokio::task::JoinHandle<Result<Option<crate::Session>, StoreError>> {
            let waiting = tokio::spawn(async move { store.session_by_secret(&hash, 600).await });
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(!waiting.is_finished(), "waits for the lead");
            waiting
        }

        assert_eq!(at_once(secret.hash.clone()).await, (50, 1), "not cached yet: one read");
        assert_eq!(at_once(secret.hash.clone()).await, (50, 0), "then answered from memory");
        reread(secret.hash.clone()).await;
        clock.advance(61);
        assert_eq!(at_once(secret.hash.clone()).await, (50, 1), "due for recording activity: one write");
        // "No such session" is not kept, but the requests waiting for it take it as theirs.
        let unknown = SecretToken::generate("").unwrap();
        let lead = lead_of(&unknown.hash);
        let waiting = tokio::spawn(at_once(unknown.hash.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        lead.answer(&None);
        drop(lead);
        assert_eq!(waiting.await.unwrap(), (0, 0), "an unknown cookie: the lead's answer for all");

        // While one request re-checks a session this process knows live, the others go on.
        reread(secret.hash.clone()).await;
        clock.advance(61);
        let lead = lead_of(&secret.hash);
        let before = lookups();
        let meanwhile = tokio::time::timeout(std::time::Duration::from_secs(5), store.session_by_secret(&secret.hash, 600));
        assert!(meanwhile.await.expect("not kept waiting").unwrap().is_some());
        assert_eq!(lookups(), before, "served from memory meanwhile");
        drop(lead);

        // One it does not hold waits; if the lead gives up (its request cancelled), the waiting
        // one asks itself.
        let other = SecretToken::generate("").unwrap();
        store.create_session(&NewSession { id: Uuid::new_v4(), secret_hash: other.hash.clone(), ..new.clone() }, &entry).await.unwrap();
        let lead = lead_of(&other.hash);
        let waiting = waiting_behind(store.clone(), other.hash.clone()).await;
        let before = lookups();
        drop(lead);
        assert!(waiting.await.unwrap().unwrap().is_some());
        assert_eq!(lookups() - before, 1, "then asked itself");

        // A live answer read before a sign-off is not taken by a request waiting after it.
        let session = Arc::new(store.session_by_secret(&other.hash, 600).await.unwrap().unwrap());
        store.sessions.evict_secret(&other.hash);
        let lead = lead_of(&other.hash);
        let waiting = waiting_behind(store.clone(), other.hash.clone()).await;
        assert!(store.end_session(&other.hash, &entry).await.unwrap());
        lead.answer(&Some(session));
        drop(lead);
        assert!(waiting.await.unwrap().unwrap().is_none(), "the sign-off stands");

        // Ended in this process, a session is gone from memory: nobody goes on with it.
        reread(secret.hash.clone()).await;
        clock.advance(61);
        store.end_session(&secret.hash, &entry).await.unwrap();
        let lead = lead_of(&secret.hash);
        let waiting = waiting_behind(store.clone(), secret.hash.clone()).await;
        drop(lead);
        assert!(waiting.await.unwrap().unwrap().is_none());
    };

    audit_is_filterable_newest_first => |store: Store, _| async move {
        add_user(&store, "ana").await;
        add_user(&store, "bea").await;
        let all = store.list_audit(&AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].target.as_deref(), Some("bea"));
        let by_target = store.list_audit(&AuditFilter { limit: 10, target: Some("ana".into()), ..Default::default() }).await.unwrap();
        assert_eq!(by_target.len(), 1);
        let by_prefix = store.list_audit(&AuditFilter { limit: 10, action: Some("user.".into()), ..Default::default() }).await.unwrap();
        assert_eq!(by_prefix.len(), 2);
        let older = store.list_audit(&AuditFilter { limit: 10, before: Some(all[0].id), ..Default::default() }).await.unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].actor, "test");
    };
}

/// Two stores on one PostgreSQL database stand for two replicas. While its notification channel
/// vouches, the second answers from memory (a change the triggers do not announce stays unseen);
/// a session the first ends is dropped at once; without the channel, entries are re-checked.
#[tokio::test]
async fn replicas_hear_of_ended_sessions() {
    use crate::Sessions;
    use std::time::{Duration, Instant};
    let Some(db) = TestDatabase::create(Backend::Postgres).await.unwrap() else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(stackgate_identity::SystemClock);
    let a = db.store(clock.clone()).await.unwrap();
    let b = db.store(clock).await.unwrap();
    let watching = b.clone();
    let watch = tokio::spawn(async move { watching.watch_sessions().await });
    let until = |what: &'static str, done: Box<dyn Fn() -> bool>| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let status = b.clone();
    until(
        "channel up",
        Box::new(move || status.session_watch_status().connected),
    )
    .await;

    let ana = add_user(&a, "ana").await;
    let secret = SecretToken::generate("").unwrap();
    let entry = cli().entry("session.create", Target::System);
    let id = Uuid::new_v4();
    let new = NewSession {
        id,
        user_id: ana,
        secret_hash: secret.hash.clone(),
        lifetime: 3600,
        amr: "pwd".into(),
        ip: None,
        user_agent: None,
    };
    a.create_session(&new, &entry).await.unwrap();
    assert!(
        b.session_by_secret(&secret.hash, 600)
            .await
            .unwrap()
            .is_some()
    );

    // An update no trigger announces: the database now says expired, the cache does not know.
    let hide = |expires: i64| {
        let a = a.clone();
        async move {
            crate::pool::on_pool!(a, |pool| sqlx::query(
                "UPDATE sessions SET expires_at = $2 WHERE id = $1"
            )
            .bind(id.to_string())
            .bind(expires)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected());
        }
    };
    hide(0).await;
    tokio::time::sleep(crate::session_cache::UNWATCHED_TTL + Duration::from_millis(100)).await;
    assert!(
        b.session_by_secret(&secret.hash, 600)
            .await
            .unwrap()
            .is_some(),
        "a vouched entry is served from memory"
    );
    hide(a.now() + 3600).await;

    let started = Instant::now();
    a.end_sessions(Sessions::OfUser(ana), "test", &entry)
        .await
        .unwrap();
    while b
        .session_by_secret(&secret.hash, 600)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica still serves the ended session"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Without the channel, what the database says wins after a short while.
    watch.abort();
    let status = b.clone();
    until(
        "channel counted lost",
        Box::new(move || !status.session_watch_status().connected),
    )
    .await;
    let other = SecretToken::generate("").unwrap();
    a.create_session(
        &NewSession {
            id: Uuid::new_v4(),
            secret_hash: other.hash.clone(),
            ..new
        },
        &entry,
    )
    .await
    .unwrap();
    assert!(
        b.session_by_secret(&other.hash, 600)
            .await
            .unwrap()
            .is_some()
    );
    crate::pool::on_pool!(a, |pool| sqlx::query(
        "UPDATE sessions SET expires_at = 0 WHERE secret_hash = $1"
    )
    .bind(&other.hash)
    .execute(pool)
    .await
    .unwrap()
    .rows_affected());
    tokio::time::sleep(crate::session_cache::UNWATCHED_TTL + Duration::from_millis(100)).await;
    assert!(
        b.session_by_secret(&other.hash, 600)
            .await
            .unwrap()
            .is_none(),
        "unwatched entries are re-checked"
    );
    a.close().await;
    b.close().await;
}
