//! The OpenAPI document and the router cannot drift apart: every documented operation is routed,
//! and API routes can only be added through `utoipa_axum::routes!`, which documents them.

use reqwest::StatusCode;
use serde_json::Value;
use stackgate_testkit::{Backend, TestServer};
use std::path::Path;

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc: Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let client = reqwest::Client::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete: String = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let request = client.request(
                method.to_uppercase().parse().unwrap(),
                server.url(&format!("/api/v1{concrete}")),
            );
            let status = request.send().await.unwrap().status();
            let expected = if path == "/openapi.json" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(
                status, expected,
                "{method} {path} is documented but answers {status}"
            );
        }
    }
    assert!(operations >= 19, "only {operations} operations documented");
    server.stop().await;
}

#[test]
fn api_routes_are_only_added_through_the_documenting_macro() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/stackgate-web/src/api");
    let router = std::fs::read_to_string(api.with_extension("rs")).unwrap();
    let mut handlers = 0;
    for entry in std::fs::read_dir(&api).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".route("),
            "{} adds a route outside routes!()",
            path.display()
        );
        let module = path.file_stem().unwrap().to_str().unwrap();
        for chunk in source.split("#[utoipa::path(").skip(1) {
            let name = chunk
                .split("pub async fn ")
                .nth(1)
                .and_then(|rest| rest.split('(').next())
                .unwrap();
            handlers += 1;
            assert!(
                router.contains(&format!("{module}::{name}")),
                "{module}::{name} is documented but not routed"
            );
        }
    }
    assert!(
        !router.contains(".route("),
        "api.rs adds a route outside routes!()"
    );
    assert!(handlers >= 18);
    // Nor may any other module of the web crate serve something under /api.
    let src = api.parent().unwrap();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != api {
                    stack.push(path);
                }
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for pattern in [
                ".route(\"/api",
                ".nest_service(\"/api",
                ".route_service(\"/api",
            ] {
                assert!(
                    !source.contains(pattern),
                    "{} serves /api outside the documented router",
                    path.display()
                );
            }
            if source.contains(".nest(\"/api") {
                assert!(
                    source.contains(".nest(\"/api/v1\", api)"),
                    "{} nests something else under /api",
                    path.display()
                );
            }
        }
    }
}
