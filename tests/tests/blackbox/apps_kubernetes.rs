//! Apps that run on Kubernetes, installed through the API with the Kubernetes driver talking to
//! kube's own mock service: the Secret carries the client secret and nothing else does, the
//! workloads follow, the edge routes to the in-cluster Service, and uninstalling — or an object
//! the cluster refuses — leaves nothing behind. An API server that stops answering fails an
//! install, and ends an uninstall, within the call limit.

use crate::{
    apps::{install_and_wait, installed, nothing_left},
    proxy::api,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use stackgate_apps::mock_cluster::MockCluster;
use stackgate_testkit::{Backend, TestServer};

/// The prefix of the apps' namespaces, and rocketchat's own namespace.
const PREFIX: &str = "stackgate-apps";
const NAMESPACE: &str = "stackgate-apps-rocketchat";

async fn start(backend: Backend) -> Option<(TestServer, MockCluster)> {
    start_with(backend, &[]).await
}

async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> Option<(TestServer, MockCluster)> {
    let (kube, cluster) = MockCluster::start(PREFIX);
    let mut settings = vec![("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")];
    settings.extend_from_slice(extra);
    let server = TestServer::start_with_cluster(backend, &settings, kube).await?;
    Some((server, cluster))
}

fn paths(cluster: &MockCluster, method: Method) -> Vec<String> {
    cluster
        .requests()
        .into_iter()
        .filter(|s| s.method.as_str() == method.as_str())
        .map(|s| s.path)
        .collect()
}

async fn installs_and_uninstalls(backend: Backend) {
    let Some((server, cluster)) = start(backend).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let (status, _) = api(
        &server,
        &admin,
        Method::POST,
        "/groups",
        Some(json!({ "name": "staff" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, plan) = api(
        &server,
        &admin,
        Method::POST,
        "/apps?dry_run=true",
        Some(json!({ "app": "rocketchat" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let kinds: Vec<&str> = plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "oidc-client",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "proxy-route",
    ] {
        assert!(
            kinds.contains(&kind),
            "{kind} missing from the plan {kinds:?}"
        );
    }
    assert!(cluster.requests().is_empty(), "a plan touches nothing");

    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "rocketchat", "user_groups": ["staff"] })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let app = installed(&server, &admin, "rocketchat").await;
    assert_eq!(app["status"], "installed", "{app}");
    let base_url = app["base_url"].as_str().unwrap();
    let proxy_port = server.proxy_addr.unwrap().port();
    assert_eq!(
        base_url,
        format!("http://rocketchat.localhost:{proxy_port}")
    );

    let routes = server.store.proxy_routes().await.unwrap();
    let route = routes
        .iter()
        .find(|r| r.app == "rocketchat")
        .expect("route");
    assert_eq!(
        route.upstream,
        format!("http://rocketchat-rocketchat.{NAMESPACE}.svc:3000")
    );
    let client = server
        .store
        .get_client("rocketchat")
        .await
        .unwrap()
        .expect("client")
        .client;
    assert_eq!(
        client.redirect_uris,
        [format!("{base_url}/_oauth/stackgate")]
    );
    assert_eq!(client.access.expect("access").user_groups, ["staff"]);

    // The secret went to the cluster once, in the Secret, before anything that reads it.
    let requests = cluster.requests();
    let with_secret: Vec<&str> = requests
        .iter()
        .filter(|s| s.body.contains("sgs_"))
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(with_secret.len(), 1, "{with_secret:?}");
    assert!(with_secret[0].starts_with(&format!(
        "/api/v1/namespaces/{NAMESPACE}/secrets/rocketchat-stackgate-oidc?"
    )));
    // The exact calls: server-side apply of each object in order, then the rollout read.
    let calls: Vec<String> = cluster
        .requests()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap()))
        .collect();
    let ns = format!("/api/v1/namespaces/{NAMESPACE}");
    assert_eq!(
        calls,
        [
            format!("PATCH {ns}"),
            format!("PATCH {ns}/secrets/rocketchat-stackgate-oidc"),
            format!("PATCH {ns}/configmaps/rocketchat-rocketchat"),
            format!("PATCH {ns}/persistentvolumeclaims/rocketchat-rocketchat-uploads"),
            format!("PATCH /apis/apps/v1/namespaces/{NAMESPACE}/deployments/rocketchat-rocketchat"),
            format!("PATCH {ns}/services/rocketchat-rocketchat"),
            format!("GET /apis/apps/v1/namespaces/{NAMESPACE}/deployments/rocketchat-rocketchat"),
        ]
    );
    assert!(
        cluster
            .requests()
            .iter()
            .filter(|s| s.method.as_str() == "PATCH")
            .all(|s| s.path.contains("fieldManager=stackgate") && s.path.contains("force=true"))
    );
    let deployment = cluster
        .object(&format!(
            "/apis/apps/v1/namespaces/{NAMESPACE}/deployments/rocketchat-rocketchat"
        ))
        .unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "registry.rocket.chat/rocketchat/rocket.chat:7.10.0"
    );
    assert_eq!(
        container["envFrom"],
        json!([
            { "configMapRef": { "name": "rocketchat-rocketchat" } },
            { "secretRef": { "name": "rocketchat-stackgate-oidc" } },
        ])
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/api/info");
    assert_eq!(
        deployment["metadata"]["labels"]["stackgate.io/app"],
        "rocketchat"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "stackgate"
    );
    let config = cluster
        .object(&format!("{ns}/configmaps/rocketchat-rocketchat"))
        .unwrap();
    assert_eq!(
        config["data"]["Accounts_OAuth_Custom-Stackgate-token_path"],
        "/token"
    );
    assert!(
        !server.config.data_dir.join("apps/rocketchat").exists(),
        "no env file for a cluster app"
    );

    let (status, body) = api(&server, &admin, Method::DELETE, "/apps/rocketchat", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    nothing_left(&server, "rocketchat", None).await;
    let deletes: Vec<String> = paths(&cluster, Method::DELETE)
        .into_iter()
        .map(|p| p.split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        deletes,
        [
            format!("{ns}/services/rocketchat-rocketchat"),
            format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/rocketchat-rocketchat"),
            format!("{ns}/configmaps/rocketchat-rocketchat"),
            format!("{ns}/secrets/rocketchat-stackgate-oidc"),
        ],
        "the data volume and its namespace stay without purge"
    );

    // With purge the data volume goes too.
    let (status, _) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "rocketchat" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        installed(&server, &admin, "rocketchat").await["status"],
        "installed"
    );
    let (status, _) = api(
        &server,
        &admin,
        Method::DELETE,
        "/apps/rocketchat?purge=true",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deletes = paths(&cluster, Method::DELETE);
    assert!(
        deletes
            .iter()
            .any(|d| d.contains("persistentvolumeclaims/rocketchat-rocketchat-uploads"))
    );
    assert_eq!(
        deletes
            .last()
            .map(|d| d.split('?').next().unwrap().to_owned()),
        Some(format!("/api/v1/namespaces/{NAMESPACE}")),
        "purge ends with the namespace"
    );
    server.stop().await;
}

async fn a_refused_object_undoes_the_install(backend: Backend) {
    let Some((server, cluster)) = start(backend).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    cluster.refuse_apply_of("/deployments/");
    let (status, _) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "rocketchat" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let app = installed(&server, &admin, "rocketchat").await;
    assert_eq!(app["status"], "failed", "{app}");
    let error = app["error"].as_str().unwrap();
    assert!(
        error.starts_with("step deploy failed") && error.contains("refused by the test"),
        "{error}"
    );
    nothing_left(&server, "rocketchat", None).await;
    let deletes = paths(&cluster, Method::DELETE);
    assert!(
        deletes
            .iter()
            .any(|d| d.contains("secrets/rocketchat-stackgate-oidc")),
        "the applied Secret is removed: {deletes:?}"
    );
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    a_cluster_app_installs_through_the_kubernetes_driver_and_uninstalls => installs_and_uninstalls;
}

stackgate_testkit::for_each_backend! {
    an_object_the_cluster_refuses_undoes_the_install => a_refused_object_undoes_the_install;
}

async fn a_proxied_app_gets_its_role_header(backend: Backend) {
    let Some((server, _cluster)) = start(backend).await else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    for group in ["staff", "hosts"] {
        let (status, _) = api(
            &server,
            &admin,
            Method::POST,
            "/groups",
            Some(json!({ "name": group })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "jitsi", "user_groups": ["staff"] })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        installed(&server, &admin, "jitsi").await["status"],
        "installed"
    );
    let route = |server: &TestServer| {
        let store = server.store.clone();
        async move {
            store
                .proxy_routes()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.app == "jitsi")
                .expect("route")
        }
    };
    let jitsi = route(&server).await;
    assert!(
        !jitsi.public_paths.contains(&"/".to_owned()),
        "the edge protects it"
    );
    let roles = jitsi.roles.expect("a role header");
    assert_eq!(
        (
            roles.header.as_str(),
            roles.user.as_str(),
            roles.admin.as_str()
        ),
        ("X-Stackgate-Role", "participant", "moderator")
    );
    assert!(roles.admin_groups.is_empty());
    let (status, _) = api(
        &server,
        &admin,
        Method::PUT,
        "/apps/jitsi/access",
        Some(json!({ "user_groups": ["staff"], "admin_groups": ["hosts"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let jitsi = route(&server).await;
    assert_eq!(jitsi.roles.expect("roles").admin_groups, ["hosts"]);
    assert_eq!(jitsi.groups, ["staff", "hosts"]);
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    a_proxied_app_is_told_roles_in_its_header => a_proxied_app_gets_its_role_header;
}

async fn a_cluster_app_upgrades_and_rolls_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let newer = include_str!("../../../charts/catalog/rocketchat.yaml")
        .replace("version: 7.10.0", "version: 7.10.1")
        .replace("rocket.chat:7.10.0", "rocket.chat:7.10.1");
    std::fs::write(dir.path().join("rocketchat-7.10.1.yaml"), newer).unwrap();
    let catalog_dir = dir.path().display().to_string();
    let Some((server, cluster)) =
        start_with(backend, &[("STACKGATE_APPS_CATALOG_DIR", &catalog_dir)]).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    // The install takes the newest version; start from the older one to upgrade it.
    std::fs::rename(
        dir.path().join("rocketchat-7.10.1.yaml"),
        dir.path().join("later.txt"),
    )
    .unwrap();
    let (status, _) = api(
        &server,
        &admin,
        Method::POST,
        "/apps",
        Some(json!({ "app": "rocketchat" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        installed(&server, &admin, "rocketchat").await["status"],
        "installed"
    );
    std::fs::rename(
        dir.path().join("later.txt"),
        dir.path().join("rocketchat-7.10.1.yaml"),
    )
    .unwrap();
    let secret_path = format!("/api/v1/namespaces/{NAMESPACE}/secrets/rocketchat-stackgate-oidc");
    let deployment_path =
        format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/rocketchat-rocketchat");
    let image = |cluster: &MockCluster| {
        cluster.object(&deployment_path).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let secret = cluster.object(&secret_path).unwrap()["stringData"]["Accounts_OAuth_Custom-Stackgate-secret"].clone();
    assert!(secret.as_str().unwrap().starts_with("sgs_"));
    assert!(image(&cluster).ends_with(":7.10.0"));

    // The calls since `from`, as `METHOD path` without the query.
    let calls_since = |cluster: &MockCluster, from: usize| -> Vec<String> {
        cluster.requests()[from..]
            .iter()
            .map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap()))
            .collect()
    };
    let ns = format!("/api/v1/namespaces/{NAMESPACE}");
    let apps = format!("/apis/apps/v1/namespaces/{NAMESPACE}");
    let apply_all = [
        format!("PATCH {ns}"),
        format!("PATCH {ns}/secrets/rocketchat-stackgate-oidc"),
        format!("PATCH {ns}/configmaps/rocketchat-rocketchat"),
        format!("PATCH {ns}/persistentvolumeclaims/rocketchat-rocketchat-uploads"),
        format!("PATCH {apps}/deployments/rocketchat-rocketchat"),
        format!("PATCH {ns}/services/rocketchat-rocketchat"),
    ];

    // The cluster refuses the new version: the old one is applied again.
    let before = cluster.requests().len();
    cluster.refuse_apply_of("rocket.chat:7.10.1");
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/rocketchat/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("rocketchat is back on 7.10.0"),
        "{body}"
    );
    assert!(image(&cluster).ends_with(":7.10.0"));
    assert_eq!(
        server
            .store
            .installed_app("rocketchat")
            .await
            .unwrap()
            .unwrap()
            .version,
        "7.10.0"
    );

    // The exact calls: the secret read back, the new objects up to the refused one, then the
    // old objects again and their rollout read.
    let mut expected = vec![format!("GET {ns}/secrets/rocketchat-stackgate-oidc")];
    expected.extend_from_slice(&apply_all[..5]);
    expected.extend_from_slice(&apply_all);
    expected.push(format!("GET {apps}/deployments/rocketchat-rocketchat"));
    assert_eq!(calls_since(&cluster, before), expected);

    // Accepted, it runs the new image with the same client secret.
    let before = cluster.requests().len();
    cluster.refuse_apply_of("nothing matches this");
    let (status, body) = api(
        &server,
        &admin,
        Method::POST,
        "/apps/rocketchat/upgrade",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "7.10.1");
    assert!(image(&cluster).ends_with(":7.10.1"));
    let kept = cluster.object(&secret_path).unwrap()["stringData"]["Accounts_OAuth_Custom-Stackgate-secret"].clone();
    assert_eq!(kept, secret, "the app keeps its client secret");
    let mut expected = vec![format!("GET {ns}/secrets/rocketchat-stackgate-oidc")];
    expected.extend_from_slice(&apply_all);
    expected.push(format!("GET {apps}/deployments/rocketchat-rocketchat"));
    assert_eq!(calls_since(&cluster, before), expected);
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    a_cluster_app_upgrades_and_rolls_back_through_the_driver => a_cluster_app_upgrades_and_rolls_back;
}

/// The API server stops answering: an install fails within the call limit and says so, an
/// uninstall ends too and names what it could not delete, and nothing is left in Stackgate.
async fn a_cluster_that_stops_answering(backend: Backend) {
    let (kube, cluster) = MockCluster::start(PREFIX);
    let kube = kube.with_call_limit(std::time::Duration::from_secs(1));
    let Some(server) =
        TestServer::start_with_cluster(backend, &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")], kube)
            .await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let install = || install_and_wait(&server, &admin, "rocketchat");

    cluster.stall(Some("/deployments/"));
    let started = std::time::Instant::now();
    let app = install().await;
    assert_eq!(app["status"], "failed", "{app}");
    let error = app["error"].as_str().unwrap();
    assert!(
        error.starts_with("step deploy failed")
            && error.contains("the cluster did not answer within 1 s")
            && error.contains("some parts could not be removed")
            && error.contains(
                "not deleted: ConfigMap rocketchat-rocketchat, Secret rocketchat-stackgate-oidc"
            ),
        "the admin is told what stayed in the cluster: {error}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "failed only after {:?}",
        started.elapsed()
    );
    nothing_left(&server, "rocketchat", None).await;
    let (_, audit) = api(&server, &admin, Method::GET, "/audit?limit=500", None).await;
    let failed = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "app.install.failed")
        .unwrap_or_else(|| panic!("no app.install.failed in {audit}"));
    let problems = failed["detail"]["cleanup_problems"].to_string();
    assert!(
        problems.contains("did not answer")
            && problems.contains("not deleted: ")
            && problems.contains("Secret rocketchat-stackgate-oidc"),
        "the admin is told what stayed in the cluster: {problems}"
    );
    let (status, _) = api(&server, &admin, Method::DELETE, "/apps/rocketchat", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Answering again, the same install goes through (apply is idempotent).
    cluster.stall(None);
    assert_eq!(install().await["status"], "installed");

    cluster.stall(Some("/"));
    let started = std::time::Instant::now();
    let (status, body) = api(&server, &admin, Method::DELETE, "/apps/rocketchat", None).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the uninstall took {:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("rocketchat is uninstalled, but some parts could not be removed")
            && message.contains("did not answer within 1 s")
            && message.contains("not deleted: "),
        "{message}"
    );
    nothing_left(&server, "rocketchat", None).await;
    server.stop().await;
}

stackgate_testkit::for_each_backend! {
    a_cluster_that_stops_answering_fails_the_install_in_bounded_time => a_cluster_that_stops_answering;
}
