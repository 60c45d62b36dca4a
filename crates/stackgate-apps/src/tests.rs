use crate::{AppsError, Catalog, Manifest, manifest::json_schema};

fn problems(source: &str) -> Vec<crate::Problem> {
    match Manifest::parse(source) {
        Err(AppsError::Manifest(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn the_shipped_catalog_is_valid() {
    let catalog = Catalog::shipped().expect("catalog");
    let ids: Vec<&str> = catalog
        .latest_entries()
        .iter()
        .map(|e| e.manifest.id())
        .collect();
    assert_eq!(
        ids,
        [
            "demo",
            "nextcloud",
            "rocketchat",
            "jitsi",
            "wordpress",
            "wekan"
        ]
    );
}

#[test]
fn the_published_schema_matches_the_types() {
    let published: serde_json::Value =
        serde_json::from_str(include_str!("../../../charts/catalog/manifest.schema.json"))
            .expect("schema is JSON");
    assert_eq!(
        published,
        json_schema(),
        "charts/catalog/manifest.schema.json is stale: regenerate it with \
         `cargo test -p stackgate-apps -- --ignored write_schema`"
    );
}

#[test]
#[ignore = "writes charts/catalog/manifest.schema.json"]
fn write_schema() {
    let text = serde_json::to_string_pretty(&json_schema()).expect("schema") + "\n";
    std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/catalog/manifest.schema.json"
        ),
        text,
    )
    .expect("write");
}

const BASE: &str = "id: notes\nname: Notes\nversion: 1.2.3\ndescription: d\ncategory: notes\n";

#[test]
fn an_unknown_field_is_refused_with_its_line() {
    let source = format!("{BASE}colour: red\n");
    let found = problems(&source);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 6, "{:?}", found[0]);
    assert!(found[0].message.contains("colour"), "{:?}", found[0]);
}

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    let source = format!(
        "{BASE}deploy:\n  process:\n    command: app\n    health_path: ../up\n    env:\n      \
         SECRET: ${{client_secret}}\n      PORT: \"1\"\noidc:\n  redirect_paths: [/cb, \"//evil\"]\n  \
         scopes: [profile, root]\n  deliver:\n    env: {{issuer: I, client_id: I, client_secret: S}}\n\
         proxy:\n  protect: false\naccess:\n  default_groups: [\"Bad Group\"]\n  roles:\n    \
         claim: sub\n    user: u\n    admin: a\n"
    );
    let found = problems(&source);
    let at = |field: &str| {
        found
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no problem at {field} in {found:#?}"))
            .line
    };
    assert_eq!(at("deploy.process.health_path"), 9);
    assert_eq!(at("deploy.process.env.SECRET"), 11);
    assert_eq!(at("deploy.process.env.PORT"), 12);
    assert_eq!(at("oidc.redirect_paths[1]"), 14);
    assert_eq!(at("oidc.scopes[1]"), 15);
    assert!(
        found
            .iter()
            .any(|p| p.field == "oidc.scopes" && p.message.contains("openid"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.field == "oidc.deliver.env" && p.message.contains("differ"))
    );
    assert_eq!(at("access.default_groups[0]"), 21);
    assert_eq!(at("access.roles.claim"), 23);
}

#[test]
fn an_app_without_oidc_must_sit_behind_the_edge() {
    let source = format!(
        "{BASE}deploy:\n  process:\n    command: app\nproxy:\n  protect: false\naccess:\n  roles:\n    \
         header: X-Role\n    user: u\n    admin: a\n"
    );
    assert!(problems(&source).iter().any(|p| p.field == "proxy.protect"));
}

#[test]
fn yaml_one_one_booleans_stay_strings() {
    let source = format!(
        "{BASE}deploy:\n  process:\n    command: app\naccess:\n  roles:\n    header: X-Role\n    user: no\n    admin: yes\n"
    );
    let manifest = Manifest::parse(&source).expect("valid");
    assert_eq!(manifest.access.roles.user.value, "no");
}

#[test]
fn oversized_and_broken_input_gets_a_clear_problem() {
    let huge = "#".repeat(300 * 1024);
    assert!(problems(&huge)[0].message.contains("larger than"));
    let broken = problems("id: [unclosed\n");
    assert!(broken[0].line >= 1, "{broken:?}");
}
