//! The Kubernetes driver: each app gets its own namespace, where a manifest's compact workloads
//! are rendered to Deployments or StatefulSets, Services, PersistentVolumeClaims, a ConfigMap
//! and the Secret with the app's OIDC settings, or its Helm chart to a Flux `HelmRepository` +
//! `HelmRelease` whose values reference that Secret. Objects are applied server-side (field
//! manager `stackgate`), carry the app's label, are ready when their rollout is complete, and
//! are deleted by name on uninstall (volumes and the namespace only with `purge`).

use crate::{
    AppsError,
    manifest::{KubernetesDeploy, Manifest},
};
use kube::{
    Client,
    api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::{Value, json};
use std::time::Duration;

/// The label every object of an app carries.
pub const APP_LABEL: &str = "stackgate.io/app";
const FIELD_MANAGER: &str = "stackgate";

/// What rendering needs besides the manifest.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub namespace: &'a str,
    pub issuer: &'a str,
    pub base_url: &'a str,
    /// The client secret; `None` when only names are needed (a plan, an uninstall).
    pub client_secret: Option<&'a str>,
}

fn labels(id: &str) -> Value {
    json!({ "app.kubernetes.io/managed-by": "stackgate", APP_LABEL: id })
}

fn meta(id: &str, name: &str, namespace: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(id) })
}

/// The Secret holding the app's OIDC settings.
pub fn secret_name(id: &str) -> String {
    format!("{id}-stackgate-oidc")
}

/// The in-cluster address the edge and Stackgate reach the app at.
pub fn internal_url(id: &str, deploy: &KubernetesDeploy, namespace: &str) -> Option<String> {
    if let Some(helm) = &deploy.helm {
        return Some(format!(
            "http://{}.{namespace}.svc:{}",
            helm.service, helm.port
        ));
    }
    let first = deploy.workloads.first()?;
    Some(format!(
        "http://{id}-{}.{namespace}.svc:{}",
        first.name, first.port
    ))
}

/// Every object of the app, in the order they are applied.
pub fn render(m: &Manifest, deploy: &KubernetesDeploy, input: &RenderInput<'_>) -> Vec<Value> {
    let id = m.id();
    let ns = input.namespace;
    let mut objects = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": ns, "labels": labels(id) },
    })];
    let fill = |text: &str| {
        text.replace("${issuer}", input.issuer)
            .replace("${client_id}", id)
            .replace("${base_url}", input.base_url)
    };
    let deliver = m.oidc.as_ref().map(|o| &o.deliver);
    if let Some(deliver) = deliver {
        let names = deliver
            .env
            .as_ref()
            .or(deliver.secret_keys.as_ref())
            .or(deliver.helm_values.as_ref());
        if let Some(names) = names {
            // Helm values read fixed keys; env and Secret-key delivery use the app's names.
            let (issuer, client_id, secret) =
                if deliver.env.is_none() && deliver.secret_keys.is_none() {
                    ("issuer", "client_id", "client_secret")
                } else {
                    (
                        names.issuer.as_str(),
                        names.client_id.as_str(),
                        names.client_secret.as_str(),
                    )
                };
            let mut data = serde_json::Map::new();
            data.insert(issuer.to_owned(), Value::String(input.issuer.to_owned()));
            data.insert(client_id.to_owned(), Value::String(id.to_owned()));
            data.insert(
                secret.to_owned(),
                Value::String(input.client_secret.unwrap_or_default().to_owned()),
            );
            objects.push(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": meta(id, &secret_name(id), ns),
                "type": "Opaque",
                "stringData": data,
            }));
        }
    }
    let env_from_secret = deliver.is_some_and(|d| d.env.is_some());
    for w in &deploy.workloads {
        let name = format!("{id}-{}", w.name);
        let selector = json!({ APP_LABEL: id, "stackgate.io/workload": w.name });
        let env: serde_json::Map<String, Value> = w
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(fill(v))))
            .collect();
        objects.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(id, &name, ns),
            "data": env,
        }));
        let mut env_from = vec![json!({ "configMapRef": { "name": name } })];
        if env_from_secret {
            env_from.push(json!({ "secretRef": { "name": secret_name(id) } }));
        }
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        for v in &w.volumes {
            let claim = format!("{name}-{}", v.name);
            objects.push(json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": meta(id, &claim, ns),
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": v.size } },
                },
            }));
            volumes
                .push(json!({ "name": v.name, "persistentVolumeClaim": { "claimName": claim } }));
            mounts.push(json!({ "name": v.name, "mountPath": v.mount_path }));
        }
        let mut pod_labels = labels(id);
        if let (Some(pod), Some(sel)) = (pod_labels.as_object_mut(), selector.as_object()) {
            pod.extend(sel.clone());
        }
        let mut spec = json!({
            "replicas": 1,
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    // An app has no business with the Kubernetes API: no token to steal.
                    "automountServiceAccountToken": false,
                    // What Docker gives every container, where Kubernetes gives none by default.
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": w.name,
                        "image": w.image,
                        "ports": [{ "containerPort": w.port, "name": "http" }],
                        "envFrom": env_from,
                        // No more rights through set-user-id programs; an image that starts as
                        // root and drops to its own user (Apache) still may.
                        "securityContext": { "allowPrivilegeEscalation": false },
                        "readinessProbe": {
                            "httpGet": { "path": w.health_path.value, "port": w.port },
                            "periodSeconds": 5,
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        });
        let kind = if w.stateful {
            spec["serviceName"] = Value::String(name.clone());
            "StatefulSet"
        } else {
            "Deployment"
        };
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": meta(id, &name, ns),
            "spec": spec,
        }));
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta(id, &name, ns),
            "spec": {
                "selector": selector,
                "ports": [{ "name": "http", "port": w.port, "targetPort": w.port }],
            },
        }));
    }
    if let Some(helm) = &deploy.helm {
        let oci = helm.repository.starts_with("oci://");
        let mut repo_spec = json!({ "url": helm.repository, "interval": "1h" });
        if oci {
            repo_spec["type"] = Value::String("oci".into());
        }
        objects.push(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": meta(id, id, ns),
            "spec": repo_spec,
        }));
        let values_from: Vec<Value> = m
            .oidc
            .as_ref()
            .and_then(|o| o.deliver.helm_values.as_ref())
            .map(|paths| {
                [
                    ("issuer", &paths.issuer),
                    ("client_id", &paths.client_id),
                    ("client_secret", &paths.client_secret),
                ]
                .into_iter()
                .map(|(key, path)| {
                    json!({ "kind": "Secret", "name": secret_name(id), "valuesKey": key, "targetPath": path })
                })
                .collect()
            })
            .unwrap_or_default();
        objects.push(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": meta(id, id, ns),
            "spec": {
                "interval": "10m",
                "chart": { "spec": {
                    "chart": helm.chart,
                    "version": helm.version,
                    "sourceRef": { "kind": "HelmRepository", "name": id },
                } },
                "values": helm.values,
                "valuesFrom": values_from,
            },
        }));
    }
    objects
}

/// Every kind the driver manages: (API group, kind, plural). The Helm chart's Role grants
/// exactly these (a test checks it).
pub const MANAGED: &[(&str, &str, &str)] = &[
    ("", "Namespace", "namespaces"),
    ("", "Secret", "secrets"),
    ("", "ConfigMap", "configmaps"),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "Service", "services"),
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    (
        "source.toolkit.fluxcd.io",
        "HelmRepository",
        "helmrepositories",
    ),
    ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases"),
];

/// The API resource of a rendered object.
fn resource(object: &Value) -> Result<ApiResource, AppsError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let Some((_, _, plural)) = MANAGED.iter().find(|(g, k, _)| *g == group && *k == kind) else {
        return Err(AppsError::Refused(format!("cannot manage {kind} objects")));
    };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// `kubectl rollout status`'s test: the controller has seen the latest spec, and every replica
/// is updated, ready (and for a Deployment available); a StatefulSet's revision is current.
fn rollout_complete(kind: &str, object: &Value, generation: Option<i64>) -> bool {
    let status = &object["status"];
    let number = |v: &Value| v.as_i64().unwrap_or(0);
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let observed = number(&status["observedGeneration"]) >= generation.unwrap_or(0);
    let updated = number(&status["updatedReplicas"]) >= wanted;
    let ready = number(&status["readyReplicas"]) >= wanted;
    let settled = if kind == "StatefulSet" {
        status["currentRevision"] == status["updateRevision"]
    } else {
        number(&status["availableReplicas"]) >= wanted
            && number(&status["replicas"]) <= number(&status["updatedReplicas"])
    };
    observed && updated && ready && settled
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// "Kind name", as messages name an object.
fn label_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    format!("{kind} {}", name_of(object))
}

fn kube_error(what: &str, err: kube::Error) -> AppsError {
    AppsError::Process(format!("{what}: {err}"))
}

/// Runs one call to the API server, giving up after `limit`.
async fn call_within<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, AppsError> {
    tokio::time::timeout(limit, call).await.map_err(|_| {
        AppsError::Process(format!(
            "{what}: the cluster did not answer within {} s",
            limit.as_secs_f64()
        ))
    })
}

/// An answer that says to try again later (the API server overloaded or restarting), or no
/// answer for a broken connection, as opposed to a refusal (403 for missing RBAC, 422).
fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A driver for the cluster this process runs in, or the one `KUBECONFIG` names; `None` when
/// there is neither (apps that run on Kubernetes are then refused, saying so).
pub async fn connect(prefix: &str) -> Result<Option<KubeDriver>, AppsError> {
    if std::env::var_os("KUBECONFIG").is_none()
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
    {
        return Ok(None);
    }
    let client = Client::try_default()
        .await
        .map_err(|e| kube_error("connecting to the cluster", e))?;
    Ok(Some(KubeDriver::new(client, prefix)))
}

/// How long one call to the API server may take by default. kube's own timeouts (295 s to read)
/// would leave an install "installing", and an uninstall's request open, for minutes per object.
/// Under the API's 30 s request timeout with an uninstall's 5 s of sign-outs, so that an
/// uninstall against a silent cluster answers, and above admission webhooks' 10 s default.
pub const CALL_LIMIT: Duration = Duration::from_secs(20);

/// The driver, with a client for the cluster and the prefix of the apps' namespaces.
#[derive(Clone)]
pub struct KubeDriver {
    client: Client,
    prefix: String,
    call_limit: Duration,
}

impl std::fmt::Debug for KubeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDriver")
            .field("prefix", &self.prefix)
            .field("call_limit", &self.call_limit)
            .finish_non_exhaustive()
    }
}

impl KubeDriver {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            call_limit: CALL_LIMIT,
        }
    }

    /// The same driver with each call to the API server bounded by `limit`.
    #[must_use]
    pub fn with_call_limit(mut self, limit: Duration) -> Self {
        self.call_limit = limit;
        self
    }

    /// Runs one call to the API server, giving up after the call limit.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, AppsError> {
        call_within(self.call_limit, what, call).await
    }

    /// The namespace of one app: `PREFIX-ID`.
    pub fn namespace_for(&self, id: &str) -> String {
        format!("{}-{id}", self.prefix)
    }

    fn api(&self, object: &Value) -> Result<Api<DynamicObject>, AppsError> {
        let resource = resource(object)?;
        if object["kind"] == "Namespace" {
            return Ok(Api::all_with(self.client.clone(), &resource));
        }
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .ok_or_else(|| AppsError::Refused("an object without a namespace".into()))?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        ))
    }

    /// Creates or updates every object (server-side apply).
    pub async fn apply(&self, objects: &[Value]) -> Result<(), AppsError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for object in objects {
            let name = name_of(object);
            let what = format!("applying {}", label_of(object));
            let api = self.api(object)?;
            self.call(&what, api.patch(name, &params, &Patch::Apply(object)))
                .await?
                .map_err(|e| kube_error(&what, e))?;
        }
        Ok(())
    }

    /// The values of a Secret; `None` when it does not exist.
    pub async fn secret_values(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, AppsError> {
        use base64::Engine;
        let secret =
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "namespace": namespace } });
        let what = format!("reading Secret {name}");
        let api = self.api(&secret)?;
        let Some(live) = self
            .call(&what, api.get_opt(name))
            .await?
            .map_err(|e| kube_error(&what, e))?
        else {
            return Ok(None);
        };
        let mut values = std::collections::BTreeMap::new();
        for (key, value) in live.data["data"].as_object().into_iter().flatten() {
            let decoded = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| AppsError::Process(format!("Secret {name}: {key} is not text")))?;
            values.insert(key.clone(), decoded);
        }
        Ok(Some(values))
    }

    /// Deletes the objects (already gone is fine); claims on volumes, and the namespace that
    /// holds them, only with `purge`. An object the cluster refuses to delete does not keep the
    /// others; a cluster that stops answering ends the attempt. The error names what is left.
    pub async fn delete(&self, objects: &[Value], purge: bool) -> Result<(), AppsError> {
        let mut problems = Vec::new();
        let mut not_tried = Vec::new();
        let mut answering = true;
        for object in objects.iter().rev() {
            if matches!(
                object["kind"].as_str(),
                Some("PersistentVolumeClaim" | "Namespace")
            ) && !purge
            {
                continue;
            }
            let name = name_of(object);
            let what = format!("deleting {}", label_of(object));
            if !answering {
                not_tried.push(label_of(object));
                continue;
            }
            let api = match self.api(object) {
                Ok(api) => api,
                Err(e) => {
                    problems.push(format!("{what}: {e}"));
                    continue;
                }
            };
            match self
                .call(&what, api.delete(name, &DeleteParams::default()))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
                Ok(Err(e)) => problems.push(kube_error(&what, e).to_string()),
                Err(stalled) => {
                    problems.push(stalled.to_string());
                    answering = false;
                }
            }
        }
        if !not_tried.is_empty() {
            problems.push(format!("not deleted: {}", not_tried.join(", ")));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AppsError::Process(problems.join("; ")))
        }
    }

    /// Whether every workload (or the Helm release) reports ready; the reason when not yet. A
    /// call not answered within `within`, or answered with "try again", counts as not ready yet.
    async fn ready(
        &self,
        objects: &[Value],
        within: Duration,
    ) -> Result<Result<(), String>, AppsError> {
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or_default();
            if !matches!(kind, "Deployment" | "StatefulSet" | "HelmRelease") {
                continue;
            }
            let name = name_of(object);
            let what = format!("reading {kind} {name}");
            let api = self.api(object)?;
            let answer = match call_within(within, &what, api.get_opt(name)).await {
                Err(stalled) => return Ok(Err(stalled.to_string())),
                Ok(Err(e)) if is_transient(&e) => return Ok(Err(kube_error(&what, e).to_string())),
                Ok(answer) => answer.map_err(|e| kube_error(&what, e))?,
            };
            let Some(live) = answer else {
                return Ok(Err(format!("{kind} {name} does not exist")));
            };
            let ready = if kind == "HelmRelease" {
                live.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            } else {
                rollout_complete(kind, &live.data, live.metadata.generation)
            };
            if !ready {
                return Ok(Err(format!("{kind} {name} is not ready")));
            }
        }
        Ok(Ok(()))
    }

    /// Waits until every workload (or the Helm release) reports ready, up to `limit`. A call
    /// that stalls or gets "try again" is tried again until then, so an API server restarting
    /// during a rollout does not fail it; a refusal (403, 404 of the kind) fails at once.
    pub async fn wait_ready(&self, objects: &[Value], limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // The last call gets at least a second, and none outlasts the wait by more.
            let within = self.call_limit.min(left.max(Duration::from_secs(1)));
            match self.ready(objects, within).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(why)) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("not ready after {} s: {why}", limit.as_secs()));
                }
                Ok(Err(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(2))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalog, manifest::Deploy};
    use http::Method;

    fn shipped(id: &str) -> (Manifest, KubernetesDeploy) {
        let catalog = Catalog::shipped().expect("catalog");
        let manifest = catalog.latest(id).expect("entry").manifest.clone();
        let Deploy::Kubernetes(deploy) = manifest.deploy.clone() else {
            panic!("{id} is not a Kubernetes app");
        };
        (manifest, deploy)
    }

    fn input(secret: Option<&str>) -> RenderInput<'_> {
        RenderInput {
            namespace: "apps",
            issuer: "https://login.example.org",
            base_url: "https://app.example.org",
            client_secret: secret,
        }
    }

    #[test]
    fn rendered_objects_have_the_shapes_kubernetes_expects() {
        use k8s_openapi::api::{
            apps::v1::{Deployment, StatefulSet},
            core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service},
        };
        for id in ["rocketchat", "wordpress", "wekan", "nextcloud", "jitsi"] {
            let (m, deploy) = shipped(id);
            let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
            assert!(!objects.is_empty(), "{id}");
            for o in &objects {
                let kind = o["kind"].as_str().expect("kind");
                let parsed = match kind {
                    "Deployment" => serde_json::from_value::<Deployment>(o.clone()).map(drop),
                    "StatefulSet" => serde_json::from_value::<StatefulSet>(o.clone()).map(drop),
                    "Service" => serde_json::from_value::<Service>(o.clone()).map(drop),
                    "ConfigMap" => serde_json::from_value::<ConfigMap>(o.clone()).map(drop),
                    "Secret" => serde_json::from_value::<Secret>(o.clone()).map(drop),
                    "PersistentVolumeClaim" => {
                        serde_json::from_value::<PersistentVolumeClaim>(o.clone()).map(drop)
                    }
                    "HelmRepository" | "HelmRelease" | "Namespace" => Ok(()),
                    other => panic!("{id}: unexpected kind {other}"),
                };
                parsed.unwrap_or_else(|e| panic!("{id}: {kind} does not parse: {e}"));
                assert_eq!(o["metadata"]["labels"][APP_LABEL], *id);
                if kind != "Namespace" {
                    assert_eq!(o["metadata"]["namespace"], "apps");
                }
                if kind != "Secret" {
                    assert!(
                        !o.to_string().contains("sgs_the_secret"),
                        "{id}: the secret leaked into a {kind}"
                    );
                }
            }
            resource(&objects[0]).expect("a known kind");
            assert!(internal_url(id, &deploy, "apps").is_some());
        }
        // A Helm chart reads the secret through valuesFrom, at the manifest's paths.
        let (m, deploy) = shipped("nextcloud");
        let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
        let release = objects
            .iter()
            .find(|o| o["kind"] == "HelmRelease")
            .expect("release");
        let from = release["spec"]["valuesFrom"]
            .as_array()
            .expect("valuesFrom");
        assert_eq!(from.len(), 3);
        assert!(from.iter().all(|f| f["name"] == "nextcloud-stackgate-oidc"));
        assert!(from.iter().any(|f| f["valuesKey"] == "client_secret"
            && f["targetPath"] == "nextcloud.extraEnv[2].value"));
        // Env delivery puts the app's own names in the Secret, read with envFrom.
        let (m, deploy) = shipped("rocketchat");
        let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
        let secret = objects
            .iter()
            .find(|o| o["kind"] == "Secret")
            .expect("secret");
        assert_eq!(
            secret["stringData"]["Accounts_OAuth_Custom-Stackgate-secret"],
            "sgs_the_secret"
        );
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let env_from = &deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"];
        assert_eq!(
            env_from[1]["secretRef"]["name"],
            "rocketchat-stackgate-oidc"
        );
        // Every workload is hardened as far as any image allows.
        for id in ["rocketchat", "wordpress", "wekan"] {
            let (m, deploy) = shipped(id);
            let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
            let pods: Vec<_> = objects
                .iter()
                .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
                .map(|o| &o["spec"]["template"]["spec"])
                .collect();
            assert!(!pods.is_empty(), "{id}");
            for pod in pods {
                assert_eq!(pod["automountServiceAccountToken"], false, "{id}");
                assert_eq!(
                    pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                    "{id}"
                );
                for container in pod["containers"].as_array().expect("containers") {
                    assert_eq!(
                        container["securityContext"]["allowPrivilegeEscalation"], false,
                        "{id}"
                    );
                }
            }
        }
    }

    #[test]
    fn ready_means_the_rollout_is_complete() {
        let deployment = |observed: i64,
                          updated: i64,
                          ready: i64,
                          available: i64,
                          replicas: i64| {
            json!({
                "spec": { "replicas": 2 },
                "status": {
                    "observedGeneration": observed, "updatedReplicas": updated,
                    "readyReplicas": ready, "availableReplicas": available, "replicas": replicas,
                },
            })
        };
        assert!(rollout_complete(
            "Deployment",
            &deployment(3, 2, 2, 2, 2),
            Some(3)
        ));
        assert!(
            !rollout_complete("Deployment", &deployment(2, 2, 2, 2, 2), Some(3)),
            "spec not seen yet"
        );
        assert!(
            !rollout_complete("Deployment", &deployment(3, 1, 2, 2, 3), Some(3)),
            "old pods remain"
        );
        assert!(
            !rollout_complete("Deployment", &deployment(3, 2, 2, 1, 2), Some(3)),
            "not available"
        );
        let set = |current: &str| {
            json!({
                "spec": { "replicas": 1 },
                "status": {
                    "observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 1,
                    "currentRevision": current, "updateRevision": "b",
                },
            })
        };
        assert!(rollout_complete("StatefulSet", &set("b"), Some(1)));
        assert!(
            !rollout_complete("StatefulSet", &set("a"), Some(1)),
            "revision not rolled out"
        );
    }

    /// Runs `then` in 1.5 s: while a wait for ready is in progress.
    fn after_a_while(then: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            then();
        });
    }

    /// An API server that stops answering for a while (a restart) does not fail a rollout that
    /// completes within the wait; one that never answers again fails it at the limit.
    #[tokio::test]
    async fn a_stall_during_the_wait_for_ready_is_waited_out() {
        let (driver, cluster) = crate::mock_cluster::MockCluster::start("apps");
        let driver = driver.with_call_limit(Duration::from_millis(300));
        let (m, deploy) = shipped("wekan");
        let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
        driver.apply(&objects).await.expect("apply");
        cluster.stall(Some("/statefulsets/"));
        let answering = cluster.clone();
        after_a_while(move || answering.stall(None));
        driver
            .wait_ready(&objects, Duration::from_secs(10))
            .await
            .expect("ready once the cluster answers again");

        cluster.stall(Some("/statefulsets/"));
        let started = std::time::Instant::now();
        let error = driver
            .wait_ready(&objects, Duration::from_secs(1))
            .await
            .expect_err("never ready");
        assert!(
            error.starts_with("not ready after 1 s: reading StatefulSet")
                && error.ends_with("the cluster did not answer within 0.3 s"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// "Try again" (503) is waited out like silence; a refusal (403, as for missing RBAC)
    /// fails the wait at once. A delete the cluster refuses does not keep the others.
    #[tokio::test]
    async fn refusals_fail_at_once_and_do_not_stop_the_other_deletes() {
        let (driver, cluster) = crate::mock_cluster::MockCluster::start("apps");
        let (m, deploy) = shipped("wekan");
        let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
        driver.apply(&objects).await.expect("apply");
        cluster.fail_with(Some((
            "/statefulsets/",
            http::StatusCode::SERVICE_UNAVAILABLE,
        )));
        let answering = cluster.clone();
        after_a_while(move || answering.fail_with(None));
        driver
            .wait_ready(&objects, Duration::from_secs(10))
            .await
            .expect("ready once the API server is back");

        cluster.fail_with(Some(("/statefulsets/", http::StatusCode::FORBIDDEN)));
        let started = std::time::Instant::now();
        let error = driver
            .wait_ready(&objects, Duration::from_secs(30))
            .await
            .expect_err("refused");
        assert!(error.contains("failed by the test"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let error = driver
            .delete(&objects, false)
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            error.starts_with("deleting StatefulSet wekan-wekan-db: ")
                && !error.contains("not deleted"),
            "{error}"
        );
        let deleted = cluster.paths(&Method::DELETE);
        assert!(
            deleted
                .iter()
                .any(|p| p.contains("/secrets/wekan-stackgate-oidc")),
            "the Secret is deleted after the refused StatefulSet: {deleted:?}"
        );
        assert!(
            cluster
                .object("/api/v1/namespaces/apps/secrets/wekan-stackgate-oidc")
                .is_none(),
            "and is gone"
        );
    }

    /// kube's own mock service stands in for the API server and records what the driver asks.
    #[tokio::test]
    async fn the_driver_applies_waits_and_deletes_through_the_api() {
        let (driver, cluster) = crate::mock_cluster::MockCluster::start("apps");
        let (m, deploy) = shipped("wekan");
        let objects = render(&m, &deploy, &input(Some("sgs_the_secret")));
        let kept = objects
            .iter()
            .filter(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some("PersistentVolumeClaim" | "Namespace")
                )
            })
            .count();
        driver.apply(&objects).await.expect("apply");
        driver
            .wait_ready(&objects, Duration::from_secs(5))
            .await
            .expect("ready");
        driver.delete(&objects, false).await.expect("delete");
        let paths = |method: Method| cluster.paths(&method);
        let patches = paths(Method::PATCH);
        assert_eq!(patches.len(), objects.len());
        assert!(
            patches
                .iter()
                .all(|u| u.contains("fieldManager=stackgate") && u.contains("force=true")),
            "{patches:?}"
        );
        assert!(
            patches
                .iter()
                .any(|u| u.starts_with("/api/v1/namespaces/apps/secrets/wekan-stackgate-oidc?")),
            "{patches:?}"
        );
        assert!(
            patches.iter().any(
                |u| u.starts_with("/apis/apps/v1/namespaces/apps/statefulsets/wekan-wekan-db?")
            )
        );
        let gets = paths(Method::GET);
        assert!(
            gets.iter()
                .any(|u| u == "/apis/apps/v1/namespaces/apps/deployments/wekan-wekan"),
            "{gets:?}"
        );
        let deletes = paths(Method::DELETE);
        assert!(
            !deletes.iter().any(|u| u.contains("persistentvolumeclaims")),
            "volumes stay without purge: {deletes:?}"
        );
        assert!(
            deletes
                .iter()
                .any(|u| u.starts_with("/api/v1/namespaces/apps/secrets/wekan-stackgate-oidc"))
        );
        assert_eq!(deletes.len(), objects.len() - kept);
        assert!(
            !deletes.iter().any(|u| u == "/api/v1/namespaces/apps"),
            "the namespace stays"
        );
        cluster.refuse_apply_of("/deployments/");
        let refused = driver.apply(&objects).await.expect_err("refused");
        assert!(
            refused.to_string().contains("refused by the test"),
            "{refused}"
        );
    }

    /// Against a real cluster, when `KUBECONFIG` is set: a small workload is applied, becomes
    /// ready, and is deleted.
    #[tokio::test]
    async fn a_real_cluster_runs_a_rendered_workload_when_kubeconfig_is_set() {
        if std::env::var_os("KUBECONFIG").is_none() {
            eprintln!("KUBECONFIG is not set: skipping the real-cluster test");
            return;
        }
        let client = Client::try_default().await.expect("cluster client");
        // A namespace of its own, removed at the end with everything in it.
        let driver = KubeDriver::new(client, "stackgate-test");
        let namespace = driver.namespace_for("sgtest");
        let source = "id: sgtest\nname: t\nversion: 1.0.0\ndescription: t\ncategory: t\n\
            deploy:\n  kubernetes:\n    workloads:\n      - name: web\n        image: docker.io/library/nginx:1.27-alpine\n        port: 80\n\
            access:\n  roles:\n    header: X-Role\n    user: u\n    admin: a\n";
        let m = Manifest::parse(source).expect("manifest");
        let Deploy::Kubernetes(deploy) = &m.deploy else {
            panic!("kubernetes")
        };
        let objects = render(
            &m,
            deploy,
            &RenderInput {
                namespace: &namespace,
                issuer: "https://x",
                base_url: "https://y",
                client_secret: None,
            },
        );
        driver.apply(&objects).await.expect("apply");
        let ready = driver.wait_ready(&objects, Duration::from_secs(180)).await;
        driver.delete(&objects, true).await.expect("delete");
        ready.expect("ready");
    }
}
