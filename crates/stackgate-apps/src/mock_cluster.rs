//! A stand-in Kubernetes API server on kube's own mock service (`tower-test`), for tests: it
//! keeps what is applied, answers reads with it (workloads ready at once, a Secret's
//! `stringData` as base64 `data`, as the API server does), deletes, records every request, and
//! can be told to refuse an object, to fail requests with a status, or to stop answering.

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
    stall: Arc<Mutex<Option<String>>>,
    fail: Arc<Mutex<Option<(String, StatusCode)>>>,
    /// Applied objects by path.
    objects: Arc<Mutex<std::collections::HashMap<String, Value>>>,
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
            // Requests never answered, kept so that their callers wait rather than fail.
            let mut unanswered = Vec::new();
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
                let stalled = answering
                    .stall
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .is_some_and(|part| path.contains(part.as_str()));
                if stalled {
                    answering.seen().push(Seen { method, path, body });
                    unanswered.push(send);
                    continue;
                }
                let failed = answering
                    .fail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .filter(|(part, _)| path.contains(part.as_str()));
                let (code, reply) = match failed {
                    Some((_, code)) => status(code, "failed by the test"),
                    None => answering.answer(&method, &path, &body),
                };
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

    /// Applying an object whose path or body contains `part` is refused (422), as an
    /// admission webhook or a quota would.
    pub fn refuse_apply_of(&self, part: &str) {
        *self
            .refuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(part.to_owned());
    }

    /// Requests whose path contains `part` get no answer, as from an API server that hangs;
    /// `None` answers everything again.
    pub fn stall(&self, part: Option<&str>) {
        *self
            .stall
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = part.map(str::to_owned);
    }

    /// Requests whose path contains `part` are answered `code` (403 as for missing RBAC, 503 as
    /// from an API server restarting), whatever their method; `None` stops it.
    pub fn fail_with(&self, failing: Option<(&str, StatusCode)>) {
        *self
            .fail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            failing.map(|(part, code)| (part.to_owned(), code));
    }

    /// The object last applied at `path` (without the query), as the cluster keeps it.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen().clone()
    }

    /// The paths (with the query) of the requests made with `method`, in order.
    pub fn paths(&self, method: &Method) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|s| s.method == method)
            .map(|s| s.path.clone())
            .collect()
    }

    fn answer(&self, method: &Method, path: &str, body: &str) -> (StatusCode, Value) {
        let refused = self
            .refuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let key = path.split('?').next().unwrap_or_default().to_owned();
        let mut objects = self
            .objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *method {
            Method::PATCH => {
                if refused.is_some_and(|part| path.contains(&part) || body.contains(&part)) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "refused by the test");
                }
                let mut object: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                if let Some(string_data) = object.get("stringData").and_then(Value::as_object) {
                    use base64::Engine;
                    let data: serde_json::Map<String, Value> = string_data
                        .iter()
                        .map(|(k, v)| {
                            let text = v.as_str().unwrap_or_default();
                            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                            (k.clone(), Value::String(encoded))
                        })
                        .collect();
                    object["data"] = Value::Object(data);
                }
                objects.insert(key, object.clone());
                (StatusCode::OK, object)
            }
            Method::GET => match objects.get(&key) {
                Some(object) => {
                    let mut object = object.clone();
                    // Workloads and releases report ready at once.
                    if path.contains("/deployments/") || path.contains("/statefulsets/") {
                        let replicas = object["spec"]["replicas"].clone();
                        object["metadata"]["generation"] = json!(1);
                        object["status"] = json!({
                            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                            "readyReplicas": replicas, "availableReplicas": replicas,
                            "currentRevision": "r1", "updateRevision": "r1",
                        });
                    } else if path.contains("/helmreleases/") {
                        object["status"] =
                            json!({ "conditions": [{ "type": "Ready", "status": "True" }] });
                    }
                    (StatusCode::OK, object)
                }
                None => status(StatusCode::NOT_FOUND, "not found"),
            },
            _ => {
                objects.remove(&key);
                status(StatusCode::OK, "deleted")
            }
        }
    }
}
