//! A stand-in Kubernetes API server on kube's own mock service (`tower-test`), for tests: it
//! answers what the driver asks (server-side apply, reads, deletes), reports workloads ready,
//! records every request, and can be told to refuse one object.

use crate::kubernetes::KubeDriver;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::{Client, client::Body};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, MutexGuard};

/// One request the driver made.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub body: String,
}

#[derive(Debug, Clone, Default)]
pub struct MockCluster {
    seen: Arc<Mutex<Vec<Seen>>>,
    refuse: Arc<Mutex<Option<String>>>,
}

fn status(code: StatusCode, message: &str) -> (StatusCode, Value) {
    let reason = if code == StatusCode::NOT_FOUND {
        "NotFound"
    } else {
        "Invalid"
    };
    (
        code,
        json!({
            "apiVersion": "v1", "kind": "Status", "metadata": {},
            "status": if code.is_success() { "Success" } else { "Failure" },
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

impl MockCluster {
    /// A driver for `namespace` whose requests go to a new mock cluster.
    pub fn start(namespace: &str) -> (KubeDriver, MockCluster) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = MockCluster::default();
        let answering = cluster.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request
                    .uri()
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let body = match request.into_body().collect().await {
                    Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
                    Err(_) => String::new(),
                };
                let (code, reply) = answering.answer(&method, &path, &body);
                answering.seen().push(Seen { method, path, body });
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(reply.to_string().into_bytes()));
                if let Ok(response) = response {
                    send.send_response(response);
                }
            }
        });
        (
            KubeDriver::new(Client::new(service, namespace.to_owned()), namespace),
            cluster,
        )
    }

    fn seen(&self) -> MutexGuard<'_, Vec<Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applying an object whose path contains `part` is refused (422), as an admission
    /// webhook or a quota would.
    pub fn refuse_apply_of(&self, part: &str) {
        *self
            .refuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(part.to_owned());
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen().clone()
    }

    fn answer(&self, method: &Method, path: &str, body: &str) -> (StatusCode, Value) {
        let refused = self
            .refuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match *method {
            Method::PATCH => {
                if refused.is_some_and(|part| path.contains(&part)) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "refused by the test");
                }
                (
                    StatusCode::OK,
                    serde_json::from_str(body).unwrap_or(Value::Null),
                )
            }
            Method::GET => {
                let name = path
                    .split('?')
                    .next()
                    .and_then(|p| p.rsplit('/').next())
                    .unwrap_or_default();
                if path.contains("/helmreleases/") {
                    (
                        StatusCode::OK,
                        json!({
                            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                            "metadata": { "name": name },
                            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
                        }),
                    )
                } else if path.contains("/deployments/") || path.contains("/statefulsets/") {
                    (
                        StatusCode::OK,
                        json!({
                            "apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": { "name": name },
                            "spec": { "replicas": 1 },
                            "status": { "readyReplicas": 1 },
                        }),
                    )
                } else {
                    status(StatusCode::NOT_FOUND, "not found")
                }
            }
            _ => status(StatusCode::OK, "deleted"),
        }
    }
}
