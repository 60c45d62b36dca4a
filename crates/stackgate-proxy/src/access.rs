//! The access policy, in Cedar: may this user do this HTTP method on this app and path?
//!
//! Three sources are compiled into one policy set and validated against the schema together:
//! the defaults shipped in `policies/`, one rule per route from its groups, and the admins' own
//! text. Each problem is reported with the source it is in and its line and column.

use crate::routes::RouteTable;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use hyper::Method;
use miette::Diagnostic;
use stackgate_identity::Uuid;
use stackgate_store::{Session, SessionChange};
use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
    sync::{Arc, Mutex},
};

/// The schema, compiled into the binary.
pub const SCHEMA: &str = include_str!("../../../policies/stackgate.cedarschema");
/// The default policies, compiled into the binary.
pub const DEFAULT_POLICIES: &str = include_str!("../../../policies/default.cedar");

/// One thing wrong with a policy text, located in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyProblem {
    /// `defaults`, `routes` or `custom`.
    pub source: &'static str,
    pub message: String,
    /// 1-based; absent when Cedar gives no place.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl std::fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(
                    f,
                    "{} policy, line {line}, column {column}: {}",
                    self.source, self.message
                )
            }
            _ => write!(f, "{} policy: {}", self.source, self.message),
        }
    }
}

/// What the policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// A compiled, validated policy set, with what a request needs ready.
#[derive(Debug)]
pub struct AccessPolicy {
    schema: Option<Schema>,
    policies: PolicySet,
    authorizer: Authorizer,
    /// `None` only in the deny-all policy in force before the first compile.
    types: Option<Types>,
    /// Each user's principal, built once: entities are the costly part of a decision (and,
    /// with the schema's actions copied in, several KiB each). By user, not by session: every
    /// sign-in makes a new session, and a cache by session grew with each of them.
    principals: Mutex<HashMap<Uuid, Arc<Principal>>>,
    /// Whether any policy reads the request's context (its path). When none does, a decision
    /// holds for every path of an app, and is remembered so.
    path_matters: bool,
}

/// A session's user and groups as Cedar entities, with what they were built from.
#[derive(Debug)]
struct Principal {
    uid: EntityUid,
    entities: Entities,
    username: String,
    email: Option<String>,
    groups: Vec<String>,
    /// What the policy decided for this user: a decision depends only on the user, the
    /// action, the app and the path, and the policy set is fixed for the life of this cache.
    decisions: Mutex<Vec<Remembered>>,
}

/// One decision a principal had.
#[derive(Debug)]
struct Remembered {
    action: &'static str,
    app: Box<str>,
    /// `None` when no policy reads the path.
    path: Option<Box<str>>,
    allow: bool,
}

/// At most this many decisions are remembered per user (then they start over), and only for
/// paths up to this long: enough for the pages a person is on, bounded for one who walks many.
const MAX_DECISIONS: usize = 32;
const MAX_REMEMBERED_PATH: usize = 128;

impl Principal {
    fn decided(&self, action: &str, app: &str, path: Option<&str>) -> Option<bool> {
        let decisions = self.decisions.lock().ok()?;
        decisions
            .iter()
            .find(|d| d.action == action && &*d.app == app && d.path.as_deref() == path)
            .map(|d| d.allow)
    }

    fn remember(&self, action: &'static str, app: &str, path: Option<&str>, allow: bool) {
        if path.is_some_and(|p| p.len() > MAX_REMEMBERED_PATH) {
            return;
        }
        if let Ok(mut decisions) = self.decisions.lock() {
            if decisions.len() >= MAX_DECISIONS {
                decisions.clear();
            }
            decisions.push(Remembered {
                action,
                app: app.into(),
                path: path.map(Into::into),
                allow,
            });
        }
    }

    fn describes(&self, session: &Session) -> bool {
        self.username == session.user.username
            && self.email == session.user.email
            && self.groups == session.groups
    }
}

/// Above this many cached principals (users) the cache starts over.
const MAX_PRINCIPALS: usize = 10_000;

/// The schema's entity types, parsed once.
#[derive(Debug)]
struct Types {
    user: EntityTypeName,
    group: EntityTypeName,
    app: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    fn new() -> Result<Self, PolicyProblem> {
        let name = |n: &str| {
            EntityTypeName::from_str(n).map_err(|e| PolicyProblem {
                source: "schema",
                message: e.to_string(),
                line: None,
                column: None,
            })
        };
        Ok(Types {
            user: name("User")?,
            group: name("Group")?,
            app: name("App")?,
            action: name("Action")?,
        })
    }
}

/// The schema, which is ours: a failure to parse it is a bug caught by the tests.
fn schema() -> Result<Schema, PolicyProblem> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyProblem {
            source: "schema",
            message: e.to_string(),
            line: None,
            column: None,
        })
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn problem(source: &'static str, text: &str, error: &dyn Diagnostic) -> PolicyProblem {
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let (line, column) = match offset {
        Some(offset) => {
            let (l, c) = line_column(text, offset);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let mut message = error.to_string();
    if let Some(help) = error.help() {
        message.push_str(&format!(" ({help})"));
    }
    PolicyProblem {
        source,
        message,
        line,
        column,
    }
}

/// The rule a route's groups stand for.
pub(crate) fn route_rules(routes: &RouteTable) -> String {
    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    for route in routes.routes() {
        for group in &route.groups {
            if seen.insert((group.clone(), route.app.clone())) {
                // `user:NAME` gives one person access; anything else names a group.
                rules.push(match group.strip_prefix("user:") {
                    Some(user) => format!(
                        "permit (principal == User::{user:?}, action, resource == App::{app:?});",
                        app = route.app
                    ),
                    None => format!(
                        "permit (principal in Group::{group:?}, action, resource == App::{app:?});",
                        app = route.app
                    ),
                });
            }
        }
    }
    rules.sort();
    rules.join("\n")
}

impl AccessPolicy {
    /// Denies everything; in force only until the first compile.
    pub fn empty() -> Self {
        AccessPolicy {
            schema: None,
            policies: PolicySet::new(),
            authorizer: Authorizer::new(),
            types: None,
            principals: Mutex::default(),
            path_matters: false,
        }
    }

    pub fn compile(
        defaults: &str,
        routes: &RouteTable,
        custom: &str,
    ) -> Result<Self, Vec<PolicyProblem>> {
        let schema = schema().map_err(|p| vec![p])?;
        let types = Types::new().map_err(|p| vec![p])?;
        let generated = route_rules(routes);
        let mut problems = Vec::new();
        let mut policies = PolicySet::new();
        for (source, text) in [
            ("defaults", defaults),
            ("routes", generated.as_str()),
            ("custom", custom),
        ] {
            let parsed = match PolicySet::from_str(text) {
                Ok(parsed) => parsed,
                Err(errors) => {
                    for error in errors.iter() {
                        problems.push(problem(source, text, error));
                    }
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                problems.push(PolicyProblem {
                    source,
                    message:
                        "templates (?principal, ?resource) are not supported; write the rule out"
                            .into(),
                    line: None,
                    column: None,
                });
            }
            let validation =
                Validator::new(schema.clone()).validate(&parsed, ValidationMode::Strict);
            for error in validation.validation_errors() {
                problems.push(problem(source, text, error));
            }
            for policy in parsed.policies() {
                let id = PolicyId::new(format!(
                    "{source}.{}",
                    policy.annotation("id").unwrap_or(policy.id().as_ref())
                ));
                if let Err(err) = policies.add(policy.new_id(id)) {
                    problems.push(PolicyProblem {
                        source,
                        message: err.to_string(),
                        line: None,
                        column: None,
                    });
                }
            }
        }
        if !problems.is_empty() {
            // One mistake can be reported once per action it applies to.
            problems.dedup();
            return Err(problems);
        }
        // A policy can read the path only through `context`: one that names it anywhere (even
        // in a string) makes every decision depend on the path, which is never wrong.
        let path_matters = policies
            .policies()
            .any(|policy| policy.to_string().contains("context"));
        Ok(AccessPolicy {
            schema: Some(schema),
            policies,
            authorizer: Authorizer::new(),
            types: Some(types),
            principals: Mutex::default(),
            path_matters,
        })
    }

    /// The whole policy set as it is in force, for admins to read.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.policies()
    }

    /// Drops what is cached about the sessions `change` may have ended (their users may have
    /// been disabled or deleted: no reason to keep them).
    pub fn forget(&self, change: SessionChange) {
        if let Ok(mut cache) = self.principals.lock() {
            match change {
                SessionChange::Session(_) => {}
                SessionChange::User(user) => {
                    cache.remove(&user);
                }
                SessionChange::All => cache.clear(),
            }
        }
    }

    #[cfg(test)]
    fn cached_principals(&self) -> usize {
        self.principals.lock().map(|c| c.len()).unwrap_or(0)
    }

    #[cfg(test)]
    fn remembered_decisions(&self, user: Uuid) -> usize {
        self.principals
            .lock()
            .ok()
            .and_then(|c| {
                c.get(&user)
                    .and_then(|p| p.decisions.lock().ok().map(|d| d.len()))
            })
            .unwrap_or(0)
    }

    pub fn decide(&self, session: &Session, app: &str, method: &Method, path: &str) -> Decision {
        match self.evaluate(session, app, method, path) {
            Ok(true) => Decision::Allow,
            Ok(false) => Decision::Deny,
            Err(err) => {
                tracing::warn!(error = %err, app, "cannot evaluate the access policy; denying");
                Decision::Deny
            }
        }
    }

    fn evaluate(
        &self,
        session: &Session,
        app: &str,
        method: &Method,
        path: &str,
    ) -> Result<bool, String> {
        let Some(types) = &self.types else {
            return Ok(false);
        };
        let principal = self.principal(types, session)?;
        let action_name = action_of(method);
        let remembered_path = self.path_matters.then_some(path);
        if let Some(allow) = principal.decided(action_name, app, remembered_path) {
            return Ok(allow);
        }
        let action =
            EntityUid::from_type_name_and_id(types.action.clone(), EntityId::new(action_name));
        let resource = EntityUid::from_type_name_and_id(types.app.clone(), EntityId::new(app));
        let context = Context::from_pairs([(
            "path".to_owned(),
            RestrictedExpression::new_string(path.to_owned()),
        )])
        .map_err(|e| e.to_string())?;
        // The policies were validated against the schema and the request is built here from
        // the schema's own names, so it is not validated again on every request.
        let request = Request::new(principal.uid.clone(), action, resource, context, None)
            .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &principal.entities);
        let allow = response.decision() == CedarDecision::Allow;
        principal.remember(action_name, app, remembered_path, allow);
        Ok(allow)
    }

    /// The session's principal, from the cache while it still describes the session.
    fn principal(&self, types: &Types, session: &Session) -> Result<Arc<Principal>, String> {
        if let Ok(cache) = self.principals.lock()
            && let Some(cached) = cache.get(&session.user.id)
            && cached.describes(session)
        {
            return Ok(cached.clone());
        }
        let user = EntityUid::from_type_name_and_id(
            types.user.clone(),
            EntityId::new(&session.user.username),
        );
        let groups: HashSet<EntityUid> = session
            .groups
            .iter()
            .map(|g| EntityUid::from_type_name_and_id(types.group.clone(), EntityId::new(g)))
            .collect();
        let mut attrs = HashMap::from([(
            "username".to_owned(),
            RestrictedExpression::new_string(session.user.username.clone()),
        )]);
        if let Some(email) = &session.user.email {
            attrs.insert(
                "email".to_owned(),
                RestrictedExpression::new_string(email.clone()),
            );
        }
        let mut entities =
            vec![Entity::new(user.clone(), attrs, groups.clone()).map_err(|e| e.to_string())?];
        entities.extend(
            groups
                .into_iter()
                .map(|g| Entity::new_no_attrs(g, HashSet::new())),
        );
        // With the schema, the action entities and their groups (`read`, `write`) come along.
        let entities =
            Entities::from_entities(entities, self.schema.as_ref()).map_err(|e| e.to_string())?;
        let principal = Arc::new(Principal {
            uid: user,
            entities,
            username: session.user.username.clone(),
            email: session.user.email.clone(),
            groups: session.groups.clone(),
            decisions: Mutex::default(),
        });
        if let Ok(mut cache) = self.principals.lock() {
            if cache.len() >= MAX_PRINCIPALS {
                cache.clear();
            }
            cache.insert(session.user.id, principal.clone());
        }
        Ok(principal)
    }
}

/// The schema's action for a method.
fn action_of(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PROPFIND" => "PROPFIND",
        "REPORT" => "REPORT",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "PROPPATCH" => "PROPPATCH",
        "MKCOL" => "MKCOL",
        "COPY" => "COPY",
        "MOVE" => "MOVE",
        "LOCK" => "LOCK",
        "UNLOCK" => "UNLOCK",
        _ => "OTHER",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::routes::Route;
    use stackgate_identity::{MfaPolicy, OffsetDateTime, User, Uuid};

    pub(crate) fn session(username: &str, groups: &[&str]) -> Session {
        Session {
            id: Uuid::new_v4(),
            user: User {
                id: Uuid::new_v4(),
                username: username.into(),
                email: Some(format!("{username}@example.org")),
                display_name: username.into(),
                disabled: false,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            is_admin: groups.contains(&"admins"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            auth_time: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            amr: "pwd".into(),
            group_mfa_policy: MfaPolicy::Optional,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn routes() -> RouteTable {
        RouteTable::new([Route::new(
            "wiki.example.org",
            "/",
            "http://127.0.0.1:9",
            "wiki",
            vec!["staff".into()],
            vec![],
        )
        .unwrap()])
        .unwrap()
    }

    #[test]
    fn the_shipped_schema_and_defaults_compile() {
        AccessPolicy::compile(DEFAULT_POLICIES, &routes(), "").unwrap();
    }

    #[test]
    fn one_person_can_be_given_an_app_by_name() {
        let routes = RouteTable::new([Route::new(
            "wiki.example.org",
            "/",
            "http://127.0.0.1:9",
            "wiki",
            vec!["staff".into(), "user:cy".into()],
            vec![],
        )
        .unwrap()])
        .unwrap();
        let policy = AccessPolicy::compile(DEFAULT_POLICIES, &routes, "").unwrap();
        let decide = |s: &Session| policy.decide(s, "wiki", &Method::GET, "/");
        assert_eq!(decide(&session("cy", &[])), Decision::Allow);
        assert_eq!(decide(&session("ana", &["staff"])), Decision::Allow);
        assert_eq!(decide(&session("eve", &[])), Decision::Deny);
        // A group named like the person does not stand for them.
        assert_eq!(decide(&session("eve", &["cy"])), Decision::Deny);
    }

    #[test]
    fn groups_methods_and_paths_decide() {
        let custom = r#"
permit (principal in Group::"interns", action in Action::"read", resource == App::"wiki");
forbid (principal, action, resource) when { context.path like "/finance*" } unless { principal in Group::"finance" };
"#;
        let policy = AccessPolicy::compile(DEFAULT_POLICIES, &routes(), custom).unwrap();
        let decide =
            |s: &Session, method: Method, path: &str| policy.decide(s, "wiki", &method, path);
        let staff = session("ana", &["staff"]);
        let intern = session("ivo", &["interns"]);
        let admin = session("root", &["admins"]);
        let nobody = session("eve", &[]);
        assert_eq!(decide(&staff, Method::POST, "/page"), Decision::Allow);
        assert_eq!(decide(&intern, Method::GET, "/page"), Decision::Allow);
        assert_eq!(
            decide(&intern, Method::from_bytes(b"PROPFIND").unwrap(), "/dav"),
            Decision::Allow
        );
        assert_eq!(decide(&intern, Method::PUT, "/page"), Decision::Deny);
        assert_eq!(
            decide(&intern, Method::from_bytes(b"BREW").unwrap(), "/pot"),
            Decision::Deny,
            "unknown methods count as writes"
        );
        assert_eq!(decide(&nobody, Method::GET, "/"), Decision::Deny);
        assert_eq!(decide(&admin, Method::DELETE, "/x"), Decision::Allow);
        assert_eq!(
            decide(&admin, Method::GET, "/finance/q3"),
            Decision::Deny,
            "forbid wins"
        );
        assert_eq!(
            policy.decide(&staff, "board", &Method::GET, "/"),
            Decision::Deny
        );
        assert_eq!(
            AccessPolicy::empty().decide(&admin, "wiki", &Method::GET, "/"),
            Decision::Deny
        );
    }

    #[test]
    fn principals_are_cached_per_user_and_forgotten_with_them() {
        let policy = AccessPolicy::compile(DEFAULT_POLICIES, &routes(), "").unwrap();
        let ana = session("ana", &["staff"]);
        let bo = session("bo", &["staff"]);
        // Ana signs in a hundred times: each sign-in is a new session, one principal.
        for _ in 0..100 {
            let again = Session {
                id: Uuid::new_v4(),
                ..ana.clone()
            };
            assert_eq!(
                policy.decide(&again, "wiki", &Method::GET, "/"),
                Decision::Allow
            );
        }
        assert_eq!(
            policy.decide(&bo, "wiki", &Method::GET, "/"),
            Decision::Allow
        );
        assert_eq!(policy.cached_principals(), 2);
        // Changed groups are noticed even before the change is announced.
        let moved = Session {
            groups: vec![],
            ..ana.clone()
        };
        assert_eq!(
            policy.decide(&moved, "wiki", &Method::GET, "/"),
            Decision::Deny
        );
        policy.forget(SessionChange::Session(bo.id));
        assert_eq!(
            policy.cached_principals(),
            2,
            "a session's end keeps its user's"
        );
        policy.forget(SessionChange::User(ana.user.id));
        assert_eq!(policy.cached_principals(), 1);
        policy.forget(SessionChange::All);
        assert_eq!(policy.cached_principals(), 0);
    }

    #[test]
    fn decisions_are_remembered_per_user_and_by_path_only_when_a_policy_reads_it() {
        let by_group = AccessPolicy::compile(DEFAULT_POLICIES, &routes(), "").unwrap();
        let ana = session("ana", &["staff"]);
        for path in ["/", "/a", "/b/c"] {
            assert_eq!(
                by_group.decide(&ana, "wiki", &Method::GET, path),
                Decision::Allow
            );
        }
        assert_eq!(
            by_group.remembered_decisions(ana.user.id),
            1,
            "no policy reads the path: one decision for the app"
        );
        assert_eq!(
            by_group.decide(&ana, "board", &Method::GET, "/"),
            Decision::Deny
        );
        assert_eq!(by_group.remembered_decisions(ana.user.id), 2);

        let custom =
            r#"forbid (principal, action, resource) when { context.path like "/finance*" };"#;
        let by_path = AccessPolicy::compile(DEFAULT_POLICIES, &routes(), custom).unwrap();
        for _ in 0..2 {
            assert_eq!(
                by_path.decide(&ana, "wiki", &Method::GET, "/wiki"),
                Decision::Allow
            );
            assert_eq!(
                by_path.decide(&ana, "wiki", &Method::GET, "/finance/q3"),
                Decision::Deny
            );
            assert_eq!(
                by_path.decide(&ana, "wiki", &Method::POST, "/wiki"),
                Decision::Allow
            );
        }
        assert_eq!(by_path.remembered_decisions(ana.user.id), 3);
        // A long path is decided each time, and remembering stays bounded.
        let long = format!("/{}", "x".repeat(MAX_REMEMBERED_PATH));
        assert_eq!(
            by_path.decide(&ana, "wiki", &Method::GET, &long),
            Decision::Allow
        );
        assert_eq!(by_path.remembered_decisions(ana.user.id), 3);
        for n in 0..100 {
            by_path.decide(&ana, "wiki", &Method::GET, &format!("/p{n}"));
        }
        assert!(by_path.remembered_decisions(ana.user.id) <= MAX_DECISIONS);
        assert_eq!(
            by_path.decide(&ana, "wiki", &Method::GET, "/finance/q4"),
            Decision::Deny
        );
        // Moved out of the group: the principal is rebuilt, and its decisions with it.
        let moved = Session {
            groups: vec![],
            ..ana.clone()
        };
        assert_eq!(
            by_path.decide(&moved, "wiki", &Method::GET, "/wiki"),
            Decision::Deny
        );
    }

    #[test]
    fn problems_carry_their_place() {
        let text = "permit (principal, action, resource);\npermit (principal, action, resource)\n  when { context.pth == \"/\" };";
        let problems = AccessPolicy::compile(DEFAULT_POLICIES, &routes(), text).unwrap_err();
        assert!(
            problems.iter().all(|p| p.source == "custom"),
            "{problems:?}"
        );
        let first = &problems[0];
        assert_eq!(
            (first.line, first.column),
            (Some(3), Some(10)),
            "{problems:?}"
        );
        assert!(first.message.contains("pth"), "{first}");
        let unknown = AccessPolicy::compile(
            DEFAULT_POLICIES,
            &routes(),
            "permit (principal in Team::\"x\", action, resource);",
        )
        .unwrap_err();
        assert_eq!(unknown[0].line, Some(1));
        assert_eq!(line_column("ab\ncd\né", 8), (3, 2));
        assert_eq!(
            line_column("ab\ncd\né", 7),
            (3, 1),
            "inside a character: no panic"
        );
    }
}
