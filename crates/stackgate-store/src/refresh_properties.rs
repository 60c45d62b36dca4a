//! Property: whatever order a refresh-token family's tokens come back in (the newest, spent
//! ones, unknown ones, a revocation), at most one token of the family is live at any time: the
//! newest, which rotates when presented, until a spent token is presented again or the family
//! is revoked, and none after.
//! Run against the real store on SQLite and PostgreSQL.

use crate::{Backend, NewGrant, RefreshOutcome, Store, testing::TestDatabase};
use proptest::prelude::*;
use stackgate_identity::{Actor, SecretToken, SystemClock, Target, Uuid};
use stackgate_oidc::NewClient;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Step {
    /// Present one of the family's tokens so far (spent or not) for rotation.
    Present(prop::sample::Index),
    /// Present a token that was never issued.
    Unknown,
    /// The app revokes one of the family's tokens (RFC 7009).
    Revoke(prop::sample::Index),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => any::<prop::sample::Index>().prop_map(Step::Present),
        1 => Just(Step::Unknown),
        1 => any::<prop::sample::Index>().prop_map(Step::Revoke),
    ];
    prop::collection::vec(step, 1..12)
}

fn digest() -> String {
    SecretToken::generate("").expect("random").hash
}

fn grant(id: Uuid, refresh: &str, now: i64) -> NewGrant {
    NewGrant {
        id,
        client_id: "app".into(),
        user_id: None,
        session_id: None,
        scope: "openid offline_access".into(),
        auth_time: None,
        acr: None,
        amr: None,
        access_jti: digest(),
        access_expires_at: now + 300,
        refresh: Some((refresh.to_owned(), now + 3600)),
    }
}

async fn live(store: &Store, tokens: &[String]) -> Vec<String> {
    let mut live = Vec::new();
    for token in tokens {
        if store
            .active_refresh_token(token)
            .await
            .expect("query")
            .is_some()
        {
            live.push(token.clone());
        }
    }
    live
}

/// One family, driven through `steps`; panics (failing the property) on the first breach.
async fn family(store: &Store, steps: &[Step]) {
    let now = store.now();
    let id = Uuid::new_v4();
    let first = digest();
    store
        .create_grant(&grant(id, &first, now))
        .await
        .expect("grant");
    let mut tokens = vec![first];
    let mut newest = Some(tokens[0].clone());
    for step in steps {
        match step {
            Step::Present(pick) => {
                let presented = pick.get(&tokens).clone();
                let next = digest();
                let outcome = store
                    .rotate_refresh(&presented, |active| {
                        let id = Uuid::parse_str(&active.id).expect("grant id");
                        Ok::<_, ()>((grant(id, &next, now), ()))
                    })
                    .await
                    .expect("rotate");
                match outcome {
                    RefreshOutcome::Issued(()) => {
                        assert_eq!(
                            Some(&presented),
                            newest.as_ref(),
                            "only the newest token rotates"
                        );
                        tokens.push(next.clone());
                        newest = Some(next);
                    }
                    // A spent token revokes the family; a revoked family stays so.
                    RefreshOutcome::Reused | RefreshOutcome::Invalid => {
                        assert_ne!(
                            Some(&presented),
                            newest.as_ref(),
                            "the newest token of a live family must rotate"
                        );
                        newest = None;
                    }
                    RefreshOutcome::Rejected(()) => unreachable!("the plan never rejects"),
                }
            }
            Step::Unknown => {
                let outcome = store
                    .rotate_refresh(&digest(), |_| Ok::<_, ()>((grant(id, &digest(), now), ())))
                    .await
                    .expect("rotate");
                assert!(
                    matches!(outcome, RefreshOutcome::Invalid),
                    "an unknown token is invalid"
                );
            }
            Step::Revoke(pick) => {
                let token = pick.get(&tokens).clone();
                store
                    .revoke_token("app", &token, None)
                    .await
                    .expect("revoke");
                newest = None;
            }
        }
        let live = live(store, &tokens).await;
        assert!(live.len() <= 1, "two live tokens in one family: {live:?}");
        assert_eq!(live.first(), newest.as_ref(), "after {step:?} of {steps:?}");
    }
}

fn check(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = runtime
        .block_on(TestDatabase::create(backend))
        .expect("test database")
    else {
        return;
    };
    let store = runtime
        .block_on(db.store(Arc::new(SystemClock)))
        .expect("store");
    let client: NewClient = serde_json::from_value(serde_json::json!({
        "id": "app",
        "name": "App",
        "public": false,
        "redirect_uris": ["https://app.example.org/cb"],
        "post_logout_redirect_uris": [],
    }))
    .expect("client json");
    let client = client.validate("app".into()).expect("client");
    let entry = Actor::system("property test").entry("client.create", Target::System);
    runtime
        .block_on(store.create_client(&client, Some("digest"), &entry))
        .expect("client");
    proptest!(ProptestConfig::with_cases(64), |(steps in steps())| {
        runtime.block_on(family(&store, &steps));
    });
    runtime.block_on(store.close());
}

#[test]
fn a_refresh_family_never_has_two_live_tokens_sqlite() {
    check(Backend::Sqlite);
}

#[test]
fn a_refresh_family_never_has_two_live_tokens_postgres() {
    check(Backend::Postgres);
}
