//! The install lifecycle: plan → OIDC client → secret delivered → app deployed → route and
//! policy → ready. A failing step undoes every step before it; the installed state is stored and
//! reconciled at start, so a crash in the middle of an install leaves nothing behind either.

use crate::{
    AppsError, Catalog, STEPS,
    app_files::{AppFiles, Leave},
    app_users::AppUsers,
    catalog::{Entry, UpdatePolicy, is_newer},
    manifest::{Deploy, Manifest, ProcessDeploy},
    process::{self, Launch, ProcessDriver},
};
use stackgate_identity::{Actor, Target};
use stackgate_oidc::{AppAccess, Client, NewClient, SigningAlg};
use stackgate_store::{AppStatus, InstalledApp, NewInstall, NewRoute, StoreError};
use stackgate_web::{
    AppState,
    app_control::{
        AccessRequest, AppControl, AppFailure, AppView, BoxFuture, CatalogEntryView, CheckView,
        InstallRequest, LauncherEntry, ManifestProblemView, PlanView, PlannedObjectView, StepView,
        UpdateView,
    },
};
use std::{
    collections::HashMap,
    ops::RangeInclusive,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

/// Where the edge proxy is reached from outside, for apps' public addresses.
#[derive(Debug, Clone)]
pub struct EdgePublic {
    /// `http` or `https`.
    pub scheme: String,
    /// Left out of URLs when it is the scheme's default.
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Apps' env files and logs go under `{data_dir}/apps/{id}/`.
    pub data_dir: PathBuf,
    pub issuer: String,
    /// Apps get `{id}.{apps_domain}` as their host at the edge.
    pub apps_domain: String,
    /// `None` when the edge proxy is not running: apps are then reached on 127.0.0.1 directly.
    pub edge: Option<EdgePublic>,
    /// Where programs are looked for first (the directory of the running binary).
    pub programs_dir: Option<PathBuf>,
    /// The cluster apps with a `kubernetes` deploy go to; `None` when there is none.
    pub kube: Option<crate::kubernetes::KubeDriver>,
    /// The organisation's own manifests, beside the shipped catalog (`apps_catalog_dir`).
    pub catalog_dir: Option<PathBuf>,
    /// Makes the named install step fail after it ran, to prove the rollback (a test hook, for
    /// Stackgate's tests and app developers' CI; `apps_test_fail_step`).
    pub fail_step: Option<String>,
    /// The user ids process apps are given one each of, when Stackgate runs as root
    /// (`apps_uids`); `None`: they run as Stackgate's own user.
    pub app_uids: Option<RangeInclusive<u32>>,
}

/// The app registry, shared by the API and the background tasks.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

struct Inner {
    state: AppState,
    settings: RegistrySettings,
    processes: ProcessDriver,
    files: AppFiles,
    users: AppUsers,
    /// Installs running or failed, by app id (installed apps are read from the store).
    progress: Mutex<HashMap<String, AppView>>,
    /// The steps of installs that finished in this process, shown with the installed app.
    finished: Mutex<HashMap<String, Vec<StepView>>>,
    /// Apps being installed, upgraded or uninstalled, with which: one change at a time per app.
    changing: Mutex<HashMap<String, &'static str>>,
}

impl Inner {
    fn changing(&self) -> MutexGuard<'_, HashMap<String, &'static str>> {
        self.changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Held while one app is being changed; dropping it (the change done, failed, or its task
/// ended) lets the next change in.
struct Change {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for Change {
    fn drop(&mut self) {
        self.inner.changing().remove(&self.id);
    }
}

/// What the steps of one install share.
#[derive(Clone)]
struct Install {
    id: String,
    manifest: Manifest,
    base_url: String,
    internal_url: String,
    port: u16,
    host: String,
    user_groups: Vec<String>,
    admin_groups: Vec<String>,
    actor: Actor,
}

fn problems_view(err: AppsError) -> AppFailure {
    match err {
        AppsError::Manifest(problems) => AppFailure::Manifest(
            problems
                .into_iter()
                .map(|p| ManifestProblemView {
                    field: p.field,
                    message: p.message,
                    line: (p.line > 0).then_some(p.line),
                    column: (p.column > 0).then_some(p.column),
                })
                .collect(),
        ),
        other => internal(other),
    }
}

fn internal(err: impl std::fmt::Display) -> AppFailure {
    AppFailure::Internal(err.to_string())
}

fn store_failure(err: StoreError) -> AppFailure {
    match err {
        StoreError::Conflict { message, .. } => AppFailure::Conflict(message),
        other => internal(other),
    }
}

fn entry_view(m: &Manifest) -> CatalogEntryView {
    CatalogEntryView {
        id: m.id().to_owned(),
        name: m.name.clone(),
        version: m.version().to_owned(),
        description: m.description.clone(),
        category: m.category.clone(),
        icon: m.icon.clone(),
        homepage: m.homepage.as_ref().map(|h| h.value.clone()),
        deploy: match m.deploy {
            Deploy::Process(_) => "process",
            Deploy::Kubernetes(_) => "kubernetes",
        },
        sign_in: sign_in_of(m),
        default_groups: m
            .access
            .default_groups
            .iter()
            .map(|g| g.value.clone())
            .collect(),
    }
}

fn pending_steps() -> Vec<StepView> {
    STEPS
        .iter()
        .map(|s| StepView {
            name: (*s).to_owned(),
            state: "pending".into(),
            detail: None,
        })
        .collect()
}

fn installed_view(app: &InstalledApp) -> Result<AppView, AppFailure> {
    let manifest = Manifest::parse(&app.manifest).map_err(problems_view)?;
    let status = match app.status {
        AppStatus::Installing => "installing",
        AppStatus::Installed => "installed",
    };
    Ok(AppView {
        id: app.id.clone(),
        name: manifest.name.clone(),
        version: app.version.clone(),
        status: status.into(),
        base_url: app.base_url.clone(),
        user_groups: app.user_groups.clone(),
        admin_groups: app.admin_groups.clone(),
        update_policy: app.update_policy.clone(),
        sign_in: sign_in_of(&manifest),
        check: check_of(&manifest),
        pid: None,
        restarts: 0,
        steps: Vec::new(),
        error: None,
    })
}

fn sign_in_of(m: &Manifest) -> &'static str {
    if m.oidc.is_some() { "oidc" } else { "proxy" }
}

fn check_of(m: &Manifest) -> Option<CheckView> {
    m.check.as_ref().map(|c| CheckView {
        sign_in_path: c.sign_in_path.as_ref().map(|p| p.value.clone()),
        signed_in_text: c.signed_in_text.clone(),
        signed_out_text: c.signed_out_text.clone(),
    })
}

/// The OIDC client an install needs, from its manifest and addresses.
fn new_client(install: &Install) -> Option<NewClient> {
    let m = &install.manifest;
    let oidc = m.oidc.as_ref()?;
    let at = |p: &str| format!("{}{p}", install.base_url);
    Some(NewClient {
        id: Some(install.id.clone()),
        name: m.name.clone(),
        redirect_uris: oidc.redirect_paths.iter().map(|p| at(&p.value)).collect(),
        post_logout_redirect_uris: oidc.post_logout_path.iter().map(|p| at(&p.value)).collect(),
        scopes: Some(
            oidc.scopes
                .iter()
                .map(|s| s.value.clone())
                .chain(std::iter::once("offline_access".to_owned()))
                .collect(),
        ),
        first_party: Some(true),
        id_token_alg: oidc.id_token_alg.as_deref().and_then(SigningAlg::parse),
        backchannel_logout_uri: oidc
            .backchannel_logout_path
            .as_ref()
            .map(|p| format!("{}{}", install.internal_url, p.value)),
        backchannel_logout_session_required: Some(true),
        frontchannel_logout_uri: oidc.frontchannel_logout_path.as_ref().map(|p| at(&p.value)),
        access: Some(app_access(m, &install.user_groups, &install.admin_groups)),
        ..NewClient::default()
    })
}

/// What the edge route of an install lets through unsigned, and the role header it sends.
fn route_settings(install: &Install) -> (Vec<String>, Option<stackgate_store::RouteRoles>) {
    let m = &install.manifest;
    let public_paths = if m.proxy.protect {
        m.proxy
            .public_paths
            .iter()
            .map(|p| p.value.clone())
            .collect()
    } else {
        // The app signs people in itself; the edge only routes.
        vec!["/".to_owned()]
    };
    let roles = m
        .access
        .roles
        .header
        .as_ref()
        .map(|header| stackgate_store::RouteRoles {
            header: header.value.clone(),
            user: m.access.roles.user.value.clone(),
            admin: m.access.roles.admin.value.clone(),
            admin_groups: install.admin_groups.clone(),
        });
    (public_paths, roles)
}

/// The objects of `these` that `those` has no object of the same kind and name for.
fn only_in(these: &[serde_json::Value], those: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let key = |o: &serde_json::Value| (o["kind"].clone(), o["metadata"]["name"].clone());
    these
        .iter()
        .filter(|o| !those.iter().any(|t| key(t) == key(o)))
        .cloned()
        .collect()
}

/// Who may sign in to the app's OIDC client, and the role claim it is told.
fn app_access(m: &Manifest, user_groups: &[String], admin_groups: &[String]) -> AppAccess {
    let roles = &m.access.roles;
    AppAccess {
        user_groups: user_groups.to_vec(),
        admin_groups: admin_groups.to_vec(),
        role_claim: roles.claim.as_ref().map(|c| c.value.clone()),
        user_role: roles.user.value.clone(),
        admin_role: roles.admin.value.clone(),
    }
}

/// `${name}` placeholders of a process's environment, filled in.
fn fill(template: &str, install: &Install, issuer: &str) -> String {
    template
        .replace("${issuer}", issuer)
        .replace("${client_id}", &install.id)
        .replace("${base_url}", &install.base_url)
        .replace("${port}", &install.port.to_string())
}

impl Registry {
    pub fn new(state: AppState, settings: RegistrySettings) -> Result<Self, AppsError> {
        // A catalog that does not load stops the start, with the file and line to fix.
        Catalog::load(settings.catalog_dir.as_deref())?;
        let files = AppFiles::new(&settings.data_dir);
        let users = AppUsers::new(settings.app_uids.clone());
        users.open_data_dir(&settings.data_dir, &files)?;
        Ok(Self {
            inner: Arc::new(Inner {
                state,
                files,
                users,
                settings,
                processes: ProcessDriver::default(),
                progress: Mutex::default(),
                finished: Mutex::default(),
                changing: Mutex::default(),
            }),
        })
    }

    fn progress(&self) -> MutexGuard<'_, HashMap<String, AppView>> {
        self.inner
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn catalog(&self) -> Result<Catalog, AppFailure> {
        Catalog::load(self.inner.settings.catalog_dir.as_deref()).map_err(|e| AppFailure::Invalid {
            field: "catalog".into(),
            detail: e.to_string(),
        })
    }

    fn finished(&self) -> MutexGuard<'_, HashMap<String, Vec<StepView>>> {
        self.inner
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An installed app's view, with the steps of its install when this process ran it.
    fn view_of(&self, app: &InstalledApp) -> Result<AppView, AppFailure> {
        let mut view = installed_view(app)?;
        if let Some(state) = self.inner.processes.state(&app.id) {
            view.pid = state.pid;
            view.restarts = state.restarts;
        }
        if let Some(steps) = self.finished().get(&app.id) {
            view.steps = steps.clone();
        }
        Ok(view)
    }

    fn files(&self) -> &AppFiles {
        &self.inner.files
    }

    /// Brings what runs in line with what is stored: processes a killed Stackgate left running
    /// are ended, an install a crash interrupted is undone, and installed process apps are
    /// started.
    pub async fn reconcile(&self) -> Result<(), AppsError> {
        crate::pid_file::end_orphans(self.files().apps_dir()).await;
        let store = &self.inner.state.store;
        let apps = store.installed_apps().await?;
        self.files()
            .forget_failed_outputs(&apps.iter().map(|a| a.id.clone()).collect());
        for app in apps {
            match app.status {
                AppStatus::Installing => {
                    tracing::warn!(app = %app.id, "undoing an install that did not finish");
                    let manifest = Manifest::parse(&app.manifest).ok();
                    self.teardown(&app.id, manifest.as_ref(), Leave::Data).await;
                    let entry = Actor::system("reconcile")
                        .entry("app.install.abandoned", Target::System)
                        .with_detail(serde_json::json!({ "app": app.id }));
                    store.remove_installed_app(&app.id, &entry).await?;
                }
                AppStatus::Installed => {
                    if let Err(err) = self.start_installed(&app) {
                        tracing::error!(app = %app.id, error = %err, "installed app cannot start");
                    }
                }
            }
        }
        Ok(())
    }

    fn start_installed(&self, app: &InstalledApp) -> Result<(), AppsError> {
        let manifest = Manifest::parse(&app.manifest)?;
        let Deploy::Process(deploy) = &manifest.deploy else {
            return Ok(());
        };
        if self.inner.processes.check(&app.id).is_ok() {
            return Ok(());
        }
        let env = process::read_env_file(&self.files().env_file(&app.id))?;
        self.launch(&app.id, deploy, env)
    }

    fn launch(
        &self,
        id: &str,
        deploy: &ProcessDeploy,
        env: Vec<(String, String)>,
    ) -> Result<(), AppsError> {
        let program = process::find_program(
            &deploy.command.value,
            self.inner.settings.programs_dir.as_deref(),
        )?;
        let health = env
            .iter()
            .find(|(k, _)| *k == deploy.port_env)
            .map(|(_, port)| format!("http://127.0.0.1:{port}{}", deploy.health_path.value));
        let user = self.inner.users.prepare(self.files(), id)?;
        self.inner.processes.start(
            id,
            &Launch {
                program,
                args: deploy.args.clone(),
                env,
                log: self.files().log_file(id),
                pid_file: self.files().pid_file(id),
                dir: self.files().data_dir(id),
                user,
            },
            health,
        )
    }

    /// Stops every app process (at shutdown).
    pub async fn shutdown(&self) {
        // A change in progress (an upgrade's rollback, an uninstall) gets a few seconds to end
        // before the processes stop, so that it does not start one again after them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.inner.changing().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner.processes.stop_all().await;
    }

    /// Keeps app processes running (restarts with backoff, health checks) until `stopped`.
    pub async fn supervise(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            self.inner.processes.supervise(&self.inner.state.http).await;
        }
    }

    /// Removes everything an app may have: process, route, client, env file, and what of its
    /// directory `leave` does not keep. Safe to run on a partial install: each part is looked up
    /// by the app's id, and an install refuses to start when any of them belonged to something
    /// else.
    async fn teardown(&self, id: &str, manifest: Option<&Manifest>, leave: Leave) -> Vec<String> {
        let mut trouble = Vec::new();
        let state = &self.inner.state;
        let actor = Actor::system("apps");
        self.inner.processes.stop(id).await;
        let strays = self.inner.users.end_strays(self.files(), id).await;
        if strays > 0 {
            tracing::warn!(app = %id, processes = strays, "ended processes of the app that had left its process group");
        }
        if let (Some(m), Some(kube)) = (manifest, &self.inner.settings.kube)
            && let Deploy::Kubernetes(k) = &m.deploy
        {
            let objects = crate::kubernetes::render(
                m,
                k,
                &crate::kubernetes::RenderInput {
                    namespace: &kube.namespace_for(id),
                    issuer: &self.inner.settings.issuer,
                    base_url: "",
                    client_secret: None,
                },
            );
            if let Err(e) = kube.delete(&objects, leave == Leave::Nothing).await {
                trouble.push(format!("cluster: {e}"));
            }
        }
        match state.store.proxy_routes().await {
            Ok(routes) => {
                for route in routes.into_iter().filter(|r| r.app == id) {
                    let entry = actor
                        .entry("proxy.route.delete", Target::System)
                        .with_detail(serde_json::json!({ "route": route.id, "app": id }));
                    if let Err(e) = state.store.remove_proxy_route(route.id, &entry).await {
                        trouble.push(format!("route: {e}"));
                    }
                }
                if let Some(edge) = state.edge.get()
                    && let Err(e) = edge.reload().await
                {
                    trouble.push(format!("edge reload: {e}"));
                }
            }
            Err(e) => trouble.push(format!("routes: {e}")),
        }
        match state.store.get_client(id).await {
            Ok(Some(_)) => {
                let entry = actor
                    .entry("client.delete", Target::System)
                    .with_detail(serde_json::json!({ "client": id }));
                if let Err(e) = state.store.delete_client(id, &entry).await {
                    trouble.push(format!("client: {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => trouble.push(format!("client: {e}")),
        }
        if let Err(e) = self.files().remove(id, leave) {
            trouble.push(format!("files: {e}"));
        }
        for t in &trouble {
            tracing::error!(app = %id, problem = %t, "could not remove part of an app");
        }
        trouble
    }

    /// Checks an install request and works out the addresses, without changing anything.
    async fn prepare(
        &self,
        request: &InstallRequest,
        actor: Actor,
    ) -> Result<(Install, Entry, String), AppFailure> {
        let entry = self
            .catalog()?
            .latest(&request.app)
            .cloned()
            .ok_or_else(|| AppFailure::NotFound(format!("app {:?} in the catalog", request.app)))?;
        let manifest = entry.manifest.clone();
        let id = manifest.id().to_owned();
        if let Deploy::Kubernetes(_) = manifest.deploy
            && self.inner.settings.kube.is_none()
        {
            return Err(AppFailure::Invalid {
                field: "app".into(),
                detail: format!(
                    "{id} runs on Kubernetes, and this Stackgate has no cluster: run it in one, or set KUBECONFIG"
                ),
            });
        }
        let store = &self.inner.state.store;
        let user_groups = match &request.user_groups {
            Some(groups) => groups.clone(),
            None => manifest
                .access
                .default_groups
                .iter()
                .map(|g| g.value.clone())
                .collect(),
        };
        let user_groups = self.existing_groups("user_groups", &user_groups).await?;
        let admin_groups = self
            .existing_groups("admin_groups", &request.admin_groups)
            .await?;
        let update_policy = request
            .update_policy
            .clone()
            .unwrap_or_else(|| "patch".into());
        if UpdatePolicy::parse(&update_policy).is_none() {
            return Err(AppFailure::Invalid {
                field: "update_policy".into(),
                detail: "must be none, patch or minor".into(),
            });
        }
        if self
            .progress()
            .get(&id)
            .is_some_and(|v| v.status == "installing")
            || store
                .installed_app(&id)
                .await
                .map_err(store_failure)?
                .is_some()
        {
            return Err(AppFailure::Conflict(format!("{id} is installed already")));
        }
        if store
            .get_client(&id)
            .await
            .map_err(store_failure)?
            .is_some()
        {
            return Err(AppFailure::Conflict(format!(
                "an OIDC client with the id {id} exists already; remove it first"
            )));
        }
        let host = format!("{id}.{}", self.inner.settings.apps_domain);
        if let Some(edge) = self.inner.state.edge.get()
            && edge.routes().iter().any(|r| r.host == host || r.app == id)
        {
            return Err(AppFailure::Conflict(format!(
                "the edge has a route for {host} or app {id} already; remove it first"
            )));
        }
        let (port, internal_url) = match (&manifest.deploy, &self.inner.settings.kube) {
            (Deploy::Kubernetes(k), Some(kube)) => (
                0,
                crate::kubernetes::internal_url(&id, k, &kube.namespace_for(&id))
                    .ok_or_else(|| internal("the manifest has no workload"))?,
            ),
            _ => {
                let port = process::free_port().map_err(internal)?;
                (port, format!("http://127.0.0.1:{port}"))
            }
        };
        let base_url = match &self.inner.settings.edge {
            Some(edge) => {
                let default = matches!(
                    (edge.scheme.as_str(), edge.port),
                    ("https", 443) | ("http", 80)
                );
                if default {
                    format!("{}://{host}", edge.scheme)
                } else {
                    format!("{}://{host}:{}", edge.scheme, edge.port)
                }
            }
            // In a cluster without Stackgate's edge, an ingress in front of it serves the host.
            None if port == 0 => format!("https://{host}"),
            None => internal_url.clone(),
        };
        Ok((
            Install {
                id,
                manifest,
                base_url,
                internal_url,
                port,
                host,
                user_groups,
                admin_groups,
                actor,
            },
            entry,
            update_policy,
        ))
    }

    async fn existing_groups(
        &self,
        field: &str,
        names: &[String],
    ) -> Result<Vec<String>, AppFailure> {
        let mut out = Vec::with_capacity(names.len());
        let store = &self.inner.state.store;
        for raw in names {
            // One person: `user:USERNAME`.
            if let Some(username) = raw.trim().strip_prefix("user:") {
                let user = store
                    .find_user(&username.to_ascii_lowercase())
                    .await
                    .map_err(store_failure)?
                    .ok_or_else(|| AppFailure::Invalid {
                        field: field.into(),
                        detail: format!("there is no user {username:?}"),
                    })?;
                let entry = format!("user:{}", user.username);
                if !out.contains(&entry) {
                    out.push(entry);
                }
                continue;
            }
            let name = stackgate_identity::group_name(raw).map_err(|e| AppFailure::Invalid {
                field: field.into(),
                detail: e.to_string(),
            })?;
            if self
                .inner
                .state
                .store
                .find_group(&name)
                .await
                .map_err(store_failure)?
                .is_none()
            {
                return Err(AppFailure::Invalid {
                    field: field.into(),
                    detail: format!("there is no group {name:?}"),
                });
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn plan_objects(&self, install: &Install) -> Vec<PlannedObjectView> {
        let m = &install.manifest;
        let mut objects = Vec::new();
        let mut add = |step: &str, kind: &str, name: &str, detail: String| {
            objects.push(PlannedObjectView {
                step: step.into(),
                kind: kind.into(),
                name: name.into(),
                detail,
            });
        };
        if let Some(oidc) = &m.oidc {
            let redirects: Vec<String> = oidc
                .redirect_paths
                .iter()
                .map(|p| format!("{}{}", install.base_url, p.value))
                .collect();
            add(
                "client",
                "oidc-client",
                &install.id,
                format!("confidential, redirect URIs {}", redirects.join(" ")),
            );
            add(
                "secret",
                "env-file",
                &self.files().env_file(&install.id).display().to_string(),
                "mode 0600: issuer, client id and secret".into(),
            );
        }
        if let Deploy::Kubernetes(k) = &m.deploy
            && let Ok(objects) = self.render(install, k, None)
        {
            for object in objects {
                let step = if object["kind"] == "Secret" {
                    "secret"
                } else {
                    "deploy"
                };
                add(
                    step,
                    object["kind"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default(),
                    format!(
                        "namespace {}",
                        object["metadata"]["namespace"].as_str().unwrap_or_default()
                    ),
                );
            }
        }
        if let Deploy::Process(p) = &m.deploy {
            add(
                "deploy",
                "process",
                &p.command.value,
                format!("listening on {}", install.internal_url),
            );
        }
        if self.inner.settings.edge.is_some() {
            let groups: Vec<&str> = install
                .user_groups
                .iter()
                .chain(&install.admin_groups)
                .map(String::as_str)
                .collect();
            add(
                "route",
                "proxy-route",
                &install.host,
                format!("→ {}", install.internal_url),
            );
            add(
                "route",
                "access-policy",
                &install.id,
                if m.proxy.protect {
                    format!("groups {} (and admins)", groups.join(", "))
                } else {
                    "the app signs people in itself; the edge only routes".into()
                },
            );
        }
        objects
    }

    async fn step(
        &self,
        name: &str,
        install: &Install,
        secret: &mut Option<String>,
    ) -> Result<String, String> {
        let state = &self.inner.state;
        let m = &install.manifest;
        match name {
            "client" => {
                let Some(new) = new_client(install) else {
                    return Ok("the app does not use OIDC".into());
                };
                let (client, plain) =
                    stackgate_web::api::clients::register(&state.store, new, &install.actor)
                        .await
                        .map_err(|e| e.to_string())?;
                *secret = plain;
                Ok(format!(
                    "client {} with {} redirect URI(s)",
                    client.id,
                    client.redirect_uris.len()
                ))
            }
            "secret" => {
                let p = match &m.deploy {
                    Deploy::Process(p) => p,
                    Deploy::Kubernetes(k) => {
                        let objects: Vec<_> = self
                            .render(install, k, secret.as_deref())?
                            .into_iter()
                            // The app's namespace, then the Secret in it.
                            .filter(|o| o["kind"] == "Namespace" || o["kind"] == "Secret")
                            .collect();
                        self.kube()?
                            .apply(&objects)
                            .await
                            .map_err(|e| e.to_string())?;
                        *secret = None;
                        return Ok(format!(
                            "Secret {}",
                            crate::kubernetes::secret_name(&install.id)
                        ));
                    }
                };
                let issuer = &self.inner.settings.issuer;
                let mut vars: Vec<(String, String)> = p
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(&v.value, install, issuer)))
                    .collect();
                vars.push((p.port_env.clone(), install.port.to_string()));
                if let (Some(names), Some(secret)) = (
                    m.oidc.as_ref().and_then(|o| o.deliver.env.as_ref()),
                    secret.as_ref(),
                ) {
                    vars.push((names.issuer.clone(), issuer.clone()));
                    vars.push((names.client_id.clone(), install.id.clone()));
                    vars.push((names.client_secret.clone(), secret.clone()));
                }
                let dir = self.files().dir(&install.id);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    // An upgrade's app is still running and reaching its data folder through it.
                    let mode = self.inner.users.app_dir_mode();
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                process::write_env_file(&self.files().env_file(&install.id), &vars)
                    .map_err(|e| e.to_string())?;
                // The secret now lives only in the file (and the store keeps its digest).
                *secret = None;
                Ok(format!(
                    "{} (mode 0600)",
                    self.files().env_file(&install.id).display()
                ))
            }
            "deploy" => {
                let p = match &m.deploy {
                    Deploy::Process(p) => p,
                    Deploy::Kubernetes(k) => {
                        // The Secret was applied with its value; the rest comes now.
                        let objects: Vec<_> = self
                            .render(install, k, None)?
                            .into_iter()
                            .filter(|o| o["kind"] != "Secret" && o["kind"] != "Namespace")
                            .collect();
                        self.kube()?
                            .apply(&objects)
                            .await
                            .map_err(|e| e.to_string())?;
                        return Ok(format!("{} objects applied", objects.len()));
                    }
                };
                let env = process::read_env_file(&self.files().env_file(&install.id))
                    .map_err(|e| e.to_string())?;
                self.launch(&install.id, p, env)
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "process started, listening on {}",
                    install.internal_url
                ))
            }
            "route" => {
                let Some(edge) = state.edge.get() else {
                    return Ok(format!(
                        "no edge proxy: the app is reached at {}",
                        install.base_url
                    ));
                };
                let groups = install
                    .user_groups
                    .iter()
                    .chain(&install.admin_groups)
                    .cloned()
                    .collect();
                let (public_paths, roles) = route_settings(install);
                let route = edge
                    .check_route(&NewRoute {
                        host: install.host.clone(),
                        path_prefix: "/".into(),
                        upstream: install.internal_url.clone(),
                        app: install.id.clone(),
                        groups,
                        public_paths,
                        roles,
                    })
                    .map_err(|e| format!("the route is refused: {e}"))?;
                let entry = install
                    .actor
                    .entry("proxy.route.create", Target::System)
                    .with_detail(serde_json::json!({ "host": route.host, "app": route.app, "groups": route.groups }));
                state
                    .store
                    .add_proxy_route(&route, &entry)
                    .await
                    .map_err(|e| e.to_string())?;
                edge.reload().await?;
                Ok(format!("{} → {}", route.host, route.upstream))
            }
            "ready" => {
                let p = match &m.deploy {
                    Deploy::Process(p) => p,
                    Deploy::Kubernetes(k) => {
                        let objects = self.render(install, k, None)?;
                        let limit = Duration::from_secs(u64::from(k.ready_timeout_seconds));
                        self.kube()?.wait_ready(&objects, limit).await?;
                        return Ok("the workloads report ready".into());
                    }
                };
                let url = format!("{}{}", install.internal_url, p.health_path.value);
                let deadline = tokio::time::Instant::now()
                    + Duration::from_secs(u64::from(p.ready_timeout_seconds));
                loop {
                    if let Err(why) = self.inner.processes.check(&install.id) {
                        return Err(format!(
                            "the process {why}; its output is in {}",
                            self.files().log_file(&install.id).display()
                        ));
                    }
                    let answer = state
                        .http
                        .get(&url)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                    if answer.is_ok_and(|r| r.status().is_success()) {
                        return Ok(format!("{url} answered"));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(format!(
                            "{url} did not answer 2xx within {} s; the app's output is in {}",
                            p.ready_timeout_seconds,
                            self.files().log_file(&install.id).display()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            other => Err(format!("unknown step {other}")),
        }
    }

    fn kube(&self) -> Result<&crate::kubernetes::KubeDriver, String> {
        self.inner
            .settings
            .kube
            .as_ref()
            .ok_or_else(|| "no Kubernetes cluster is configured".to_owned())
    }

    fn render(
        &self,
        install: &Install,
        deploy: &crate::manifest::KubernetesDeploy,
        secret: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, String> {
        let kube = self.kube()?;
        Ok(crate::kubernetes::render(
            &install.manifest,
            deploy,
            &crate::kubernetes::RenderInput {
                namespace: &kube.namespace_for(&install.id),
                issuer: &self.inner.settings.issuer,
                base_url: &install.base_url,
                client_secret: secret,
            },
        ))
    }

    fn set_step(&self, id: &str, index: usize, state: &str, detail: Option<String>) {
        if let Some(view) = self.progress().get_mut(id)
            && let Some(step) = view.steps.get_mut(index)
        {
            step.state = state.into();
            step.detail = detail;
        }
    }

    /// Claims `id` for one change (`what`: "installed", "upgraded", "uninstalled"), or says
    /// which change holds it.
    fn begin_change(&self, id: &str, what: &'static str) -> Result<Change, AppFailure> {
        let mut changing = self.inner.changing();
        if let Some(other) = changing.get(id) {
            return Err(AppFailure::Conflict(format!(
                "{id} is being {other}; wait until it is done"
            )));
        }
        changing.insert(id.to_owned(), what);
        Ok(Change {
            inner: Arc::clone(&self.inner),
            id: id.to_owned(),
        })
    }

    /// Moves an installed app to another catalog version (the newest when `version` is none).
    /// When a step fails — most often, the new version is not ready in time — the old version
    /// is put back as it was: its settings, its client and its process.
    pub async fn upgrade(
        &self,
        id: &str,
        version: Option<&str>,
        actor: Actor,
    ) -> Result<AppView, AppFailure> {
        let _change = self.begin_change(id, "upgraded")?;
        self.upgrade_locked(id, version, actor).await
    }

    async fn upgrade_locked(
        &self,
        id: &str,
        version: Option<&str>,
        actor: Actor,
    ) -> Result<AppView, AppFailure> {
        let store = &self.inner.state.store;
        let app = store
            .installed_app(id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| AppFailure::NotFound(format!("app {id}")))?;
        if app.status != AppStatus::Installed {
            return Err(AppFailure::Conflict(format!("{id} is being installed")));
        }
        let catalog = self.catalog()?;
        let target = match version {
            Some(v) => catalog.version(id, v),
            None => catalog.latest(id),
        }
        .cloned()
        .ok_or_else(|| {
            AppFailure::NotFound(format!(
                "version {} of {id} in the catalog",
                version.unwrap_or("(any)")
            ))
        })?;
        let to = target.manifest.version().to_owned();
        if !is_newer(&to, &app.version) {
            return Err(AppFailure::Conflict(format!(
                "{id} is at {}; {to} is not newer",
                app.version
            )));
        }
        let old = Manifest::parse(&app.manifest).map_err(problems_view)?;
        let same_driver = matches!(
            (&old.deploy, &target.manifest.deploy),
            (Deploy::Process(_), Deploy::Process(_))
                | (Deploy::Kubernetes(_), Deploy::Kubernetes(_))
        );
        if !same_driver {
            return Err(AppFailure::Invalid {
                field: "version".into(),
                detail: "an upgrade cannot move an app between a process and Kubernetes; uninstall and install instead".into(),
            });
        }
        if old.oidc.is_some() != target.manifest.oidc.is_some() {
            return Err(AppFailure::Invalid {
                field: "version".into(),
                detail:
                    "an upgrade cannot add or remove OIDC sign-in; uninstall and install instead"
                        .into(),
            });
        }
        let port = match &old.deploy {
            Deploy::Process(_) => url::Url::parse(&app.internal_url)
                .ok()
                .and_then(|u| u.port())
                .ok_or_else(|| internal("the stored internal address has no port"))?,
            Deploy::Kubernetes(_) => 0,
        };
        let install = Install {
            id: id.to_owned(),
            manifest: target.manifest.clone(),
            base_url: app.base_url.clone(),
            internal_url: app.internal_url.clone(),
            port,
            host: format!("{id}.{}", self.inner.settings.apps_domain),
            user_groups: app.user_groups.clone(),
            admin_groups: app.admin_groups.clone(),
            actor: actor.clone(),
        };
        let old_install = Install {
            manifest: old.clone(),
            ..install.clone()
        };
        // The secret stays: the store only has its digest; the app's env file or Secret has it.
        let (secret, old_env) = match &old.deploy {
            Deploy::Process(_) => {
                let env = process::read_env_file(&self.files().env_file(id)).map_err(internal)?;
                let secret = old
                    .oidc
                    .as_ref()
                    .and_then(|o| o.deliver.env.as_ref())
                    .and_then(|names| env.iter().find(|(k, _)| *k == names.client_secret))
                    .map(|(_, v)| v.clone());
                (secret, Some(env))
            }
            Deploy::Kubernetes(_) => (self.cluster_secret(&old).await?, None),
        };
        let old_client = store
            .get_client(id)
            .await
            .map_err(store_failure)?
            .map(|c| c.client);
        let detail = serde_json::json!({ "app": id, "from": app.version, "to": to });
        match self
            .swap(&install, old_client.as_ref(), secret.clone())
            .await
        {
            Ok(()) => {
                // Objects the old version had and the new one does not go.
                if let (Deploy::Kubernetes(old_k), Deploy::Kubernetes(new_k)) =
                    (&old.deploy, &target.manifest.deploy)
                    && let (Ok(before), Ok(after)) = (
                        self.render(&old_install, old_k, None),
                        self.render(&install, new_k, None),
                    )
                {
                    let gone = only_in(&before, &after);
                    if let Ok(kube) = self.kube()
                        && let Err(e) = kube.delete(&gone, false).await
                    {
                        tracing::warn!(app = %id, error = %e, "objects of the old version stay");
                    }
                }
                // The new version's edge settings (what is public, the role header).
                let (public_paths, roles) = route_settings(&install);
                let entry = actor
                    .entry("proxy.route.update", Target::System)
                    .with_detail(serde_json::json!({ "app": id, "public_paths": public_paths }));
                store
                    .set_app_route(id, &public_paths, roles.as_ref(), &entry)
                    .await
                    .map_err(store_failure)?;
                if let Some(edge) = self.inner.state.edge.get() {
                    edge.reload().await.map_err(internal)?;
                }
                let entry = actor
                    .entry("app.upgrade", Target::System)
                    .with_detail(detail);
                store
                    .set_app_version(id, &to, &target.source, &entry)
                    .await
                    .map_err(store_failure)?;
                tracing::info!(app = %id, from = %app.version, to = %to, "upgraded");
                let app = store
                    .installed_app(id)
                    .await
                    .map_err(store_failure)?
                    .ok_or_else(|| AppFailure::NotFound(format!("app {id}")))?;
                self.view_of(&app)
            }
            Err((step, reason)) => {
                tracing::warn!(app = %id, step = %step, reason = %reason, "upgrade failed; rolling back");
                let mut trouble = Vec::new();
                if let Some(client) = &old_client {
                    let entry = actor
                        .entry("client.update", Target::System)
                        .with_detail(serde_json::json!({ "client": id, "rollback": true }));
                    if let Err(e) = store.update_client(client, &entry).await {
                        trouble.push(format!("client: {e}"));
                    }
                }
                match (&old.deploy, old_env) {
                    (Deploy::Process(old_deploy), Some(old_env)) => {
                        self.inner.processes.stop(id).await;
                        if let Err(e) =
                            process::write_env_file(&self.files().env_file(id), &old_env)
                        {
                            trouble.push(format!("env file: {e}"));
                        }
                        if let Err(e) = self.launch(id, old_deploy, old_env) {
                            trouble.push(format!("the old version: {e}"));
                        }
                    }
                    (Deploy::Kubernetes(old_k), _) => {
                        if let Err(e) = self
                            .restore_cluster(&old_install, old_k, &install, secret.as_deref())
                            .await
                        {
                            trouble.push(format!("the old version: {e}"));
                        }
                    }
                    _ => {}
                }
                if let Err(e) = self.step("ready", &old_install, &mut None).await {
                    trouble.push(format!("the old version: {e}"));
                }
                let entry = actor.entry("app.upgrade.failed", Target::System).with_detail(
                    serde_json::json!({ "app": id, "from": app.version, "to": to, "step": step, "reason": reason, "rollback_problems": trouble }),
                );
                if let Err(e) = store.record(&entry).await {
                    tracing::error!(error = %e, "cannot audit a failed upgrade");
                }
                let back = if trouble.is_empty() {
                    format!("{id} is back on {}", app.version)
                } else {
                    format!(
                        "putting {} back had problems: {}",
                        app.version,
                        trouble.join("; ")
                    )
                };
                Err(AppFailure::Step {
                    step,
                    reason: format!("{reason}; {back}"),
                })
            }
        }
    }

    /// The client secret of a cluster app, as its Secret holds it.
    async fn cluster_secret(&self, m: &Manifest) -> Result<Option<String>, AppFailure> {
        let Some(deliver) = m.oidc.as_ref().map(|o| &o.deliver) else {
            return Ok(None);
        };
        let key = match (&deliver.env, &deliver.secret_keys) {
            (Some(names), _) | (None, Some(names)) => names.client_secret.clone(),
            (None, None) => "client_secret".to_owned(),
        };
        let kube = self.kube().map_err(internal)?;
        let values = kube
            .secret_values(
                &kube.namespace_for(m.id()),
                &crate::kubernetes::secret_name(m.id()),
            )
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("the app's Secret is missing from the cluster"))?;
        values
            .get(&key)
            .cloned()
            .map(Some)
            .ok_or_else(|| internal(format!("the app's Secret has no {key}")))
    }

    /// Puts a cluster app's old objects back, and removes what only the new version had.
    async fn restore_cluster(
        &self,
        old_install: &Install,
        old_k: &crate::manifest::KubernetesDeploy,
        new_install: &Install,
        secret: Option<&str>,
    ) -> Result<(), String> {
        let kube = self.kube()?;
        let before = self.render(old_install, old_k, secret)?;
        if let Deploy::Kubernetes(new_k) = &new_install.manifest.deploy {
            let after = self.render(new_install, new_k, None)?;
            kube.delete(&only_in(&after, &before), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        kube.apply(&before).await.map_err(|e| e.to_string())
    }

    /// The new version's client settings, secret and process; `Err` names the failed step.
    async fn swap(
        &self,
        install: &Install,
        old_client: Option<&Client>,
        secret: Option<String>,
    ) -> Result<(), (String, String)> {
        let store = &self.inner.state.store;
        if let (Some(new), Some(old)) = (new_client(install), old_client) {
            let fail = |e: String| ("client".to_owned(), e);
            let mut client = new
                .validate(install.id.clone())
                .map_err(|e| fail(e.to_string()))?;
            client.access = old.access.clone();
            let entry = install
                .actor
                .entry("client.update", Target::System)
                .with_detail(serde_json::json!({ "client": install.id, "redirect_uris": client.redirect_uris }));
            store
                .update_client(&client, &entry)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let mut secret = secret;
        for step in ["secret", "deploy", "ready"] {
            if step == "deploy" {
                self.inner.processes.stop(&install.id).await;
            }
            let mut result = self.step(step, install, &mut secret).await;
            if result.is_ok() && self.inner.settings.fail_step.as_deref() == Some(step) {
                result = Err("failure injected by apps_test_fail_step".into());
            }
            result.map_err(|reason| (step.to_owned(), reason))?;
        }
        Ok(())
    }

    /// Applies every app's update policy once: each takes the newest catalog version its policy
    /// allows. Each update, done or rolled back, is in the audit log.
    pub async fn apply_updates(&self) -> Result<Vec<UpdateView>, AppFailure> {
        let catalog = self.catalog()?;
        let apps = self
            .inner
            .state
            .store
            .installed_apps()
            .await
            .map_err(store_failure)?;
        let mut done = Vec::new();
        for app in apps.iter().filter(|a| a.status == AppStatus::Installed) {
            let Some(policy) = UpdatePolicy::parse(&app.update_policy) else {
                continue;
            };
            let Some(target) = catalog.update_for(&app.id, &app.version, policy) else {
                continue;
            };
            let to = target.manifest.version().to_owned();
            let outcome = match self
                .upgrade(&app.id, Some(&to), Actor::system("updater"))
                .await
            {
                Ok(_) => "updated".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            done.push(UpdateView {
                app: app.id.clone(),
                from: app.version.clone(),
                to,
                outcome,
            });
        }
        Ok(done)
    }

    async fn run_install(&self, install: Install, _change: Change) {
        let id = install.id.clone();
        let mut secret = None;
        let mut failure = None;
        // An earlier failed install's output would read as this one's.
        if let Err(e) = self.files().forget_output(&id) {
            tracing::warn!(app = %id, error = %e, "could not remove an earlier install's output");
        }
        for (index, name) in STEPS.iter().enumerate() {
            self.set_step(&id, index, "running", None);
            let mut result = self.step(name, &install, &mut secret).await;
            if result.is_ok() && self.inner.settings.fail_step.as_deref() == Some(*name) {
                result = Err("failure injected by apps_test_fail_step".into());
            }
            match result {
                Ok(detail) => self.set_step(&id, index, "done", Some(detail)),
                Err(reason) => {
                    self.set_step(&id, index, "failed", Some(reason.clone()));
                    failure = Some((index, (*name).to_owned(), reason));
                    break;
                }
            }
        }
        let store = &self.inner.state.store;
        match failure {
            None => {
                let entry = install
                    .actor
                    .entry("app.install", Target::System)
                    .with_detail(serde_json::json!({ "app": id, "version": install.manifest.version(), "base_url": install.base_url }));
                match store.finish_app_install(&id, &entry).await {
                    Ok(()) => {
                        if let Some(view) = self.progress().remove(&id) {
                            self.finished().insert(id.clone(), view.steps);
                        }
                        tracing::info!(app = %id, "installed");
                    }
                    Err(e) => {
                        self.fail(&install, STEPS.len(), "record".into(), e.to_string())
                            .await;
                    }
                }
            }
            Some((index, step, reason)) => self.fail(&install, index, step, reason).await,
        }
    }

    /// Claims the app, checks the request, stores the install as begun and starts its steps in
    /// the background; returns the view to follow it by.
    async fn start_install(
        &self,
        request: InstallRequest,
        actor: Actor,
    ) -> Result<AppView, AppFailure> {
        // Claimed first, so that a change in progress is what a refusal names.
        let change = self.begin_change(&request.app, "installed")?;
        let (install, entry, update_policy) = self.prepare(&request, actor).await?;
        let record = NewInstall {
            id: install.id.clone(),
            version: install.manifest.version().to_owned(),
            manifest: entry.source.clone(),
            base_url: install.base_url.clone(),
            internal_url: install.internal_url.clone(),
            user_groups: install.user_groups.clone(),
            admin_groups: install.admin_groups.clone(),
            update_policy: update_policy.clone(),
        };
        let audit = install
            .actor
            .entry("app.install.start", Target::System)
            .with_detail(serde_json::json!({ "app": install.id, "user_groups": install.user_groups, "admin_groups": install.admin_groups }));
        // The stored row claims the id: of two concurrent installs, one gets a conflict.
        self.inner
            .state
            .store
            .begin_app_install(&record, &audit)
            .await
            .map_err(store_failure)?;
        let view = AppView {
            id: install.id.clone(),
            name: install.manifest.name.clone(),
            version: record.version.clone(),
            status: "installing".into(),
            base_url: install.base_url.clone(),
            user_groups: install.user_groups.clone(),
            admin_groups: install.admin_groups.clone(),
            update_policy,
            sign_in: sign_in_of(&install.manifest),
            check: check_of(&install.manifest),
            pid: None,
            restarts: 0,
            steps: pending_steps(),
            error: None,
        };
        self.progress().insert(install.id.clone(), view.clone());
        let registry = self.clone();
        tokio::spawn(async move { registry.run_install(install, change).await });
        Ok(view)
    }

    async fn uninstall_now(&self, id: &str, purge: bool, actor: Actor) -> Result<(), AppFailure> {
        let _change = self.begin_change(id, "uninstalled")?;
        let id = id.to_owned();
        let store = &self.inner.state.store;
        let known = store.installed_app(&id).await.map_err(store_failure)?;
        // With no change running, a view in progress is a failed install's.
        let failed = self.progress().contains_key(&id);
        if known.is_none() {
            if !failed {
                return Err(AppFailure::NotFound(format!("app {id}")));
            }
            // Dismissing a failed install drops the output it kept; the view stays until it can.
            self.files().forget_output(&id).map_err(|e| {
                AppFailure::Incomplete(format!(
                    "the failed install of {id} is kept: {}: {e}",
                    self.files().log_file(&id).display()
                ))
            })?;
            self.progress().remove(&id);
            return Ok(());
        }
        self.progress().remove(&id);
        self.finished().remove(&id);
        // The app's sessions end first, while it still runs to hear of it.
        let mut told = 0;
        if let Some(stored) = store.get_client(&id).await.map_err(store_failure)? {
            let sessions = store.client_sessions(&id).await.map_err(store_failure)?;
            let entry = actor.entry("app.sign_out", Target::System);
            let deliveries = store
                .sign_out_of_client(&stored.client, &sessions, "app uninstalled", &entry)
                .await
                .map_err(store_failure)?;
            told = stackgate_web::oidc::sign_off::deliver_and_wait(
                &self.inner.state,
                deliveries,
                Duration::from_secs(5),
            )
            .await;
        }
        let manifest = known
            .as_ref()
            .and_then(|a| Manifest::parse(&a.manifest).ok());
        let leave = if purge { Leave::Nothing } else { Leave::Data };
        let trouble = self.teardown(&id, manifest.as_ref(), leave).await;
        let entry = actor.entry("app.uninstall", Target::System).with_detail(
            serde_json::json!({ "logout_tokens_delivered": told, "app": id, "purge": purge, "cleanup_problems": trouble }),
        );
        store
            .remove_installed_app(&id, &entry)
            .await
            .map_err(store_failure)?;
        if trouble.is_empty() {
            Ok(())
        } else {
            Err(AppFailure::Incomplete(format!(
                "{id} is uninstalled, but some parts could not be removed: {}",
                trouble.join("; ")
            )))
        }
    }

    async fn fail(&self, install: &Install, failed_index: usize, step: String, reason: String) {
        let id = &install.id;
        tracing::warn!(app = %id, step = %step, reason = %reason, "install failed; undoing it");
        let trouble = self
            .teardown(id, Some(&install.manifest), Leave::DataAndOutput)
            .await;
        for index in 0..failed_index {
            self.set_step(id, index, "undone", None);
        }
        let entry = install
            .actor
            .entry("app.install.failed", Target::System)
            .with_detail(serde_json::json!({ "app": id, "step": step, "reason": reason, "cleanup_problems": trouble }));
        if let Err(e) = self
            .inner
            .state
            .store
            .remove_installed_app(id, &entry)
            .await
        {
            tracing::error!(app = %id, error = %e, "could not forget a failed install");
        }
        if let Some(view) = self.progress().get_mut(id) {
            view.status = "failed".into();
            view.error = Some(if trouble.is_empty() {
                format!("step {step} failed: {reason}")
            } else {
                format!(
                    "step {step} failed: {reason}; undoing it, some parts could not be removed: {}",
                    trouble.join("; ")
                )
            });
        }
    }
}

impl AppControl for Registry {
    fn catalog(&self) -> Result<Vec<CatalogEntryView>, AppFailure> {
        Ok(Registry::catalog(self)?
            .latest_entries()
            .into_iter()
            .map(|e| entry_view(&e.manifest))
            .collect())
    }

    fn validate(&self, manifest: &str) -> Result<CatalogEntryView, AppFailure> {
        Manifest::parse(manifest)
            .map(|m| entry_view(&m))
            .map_err(problems_view)
    }

    fn plan(&self, request: InstallRequest) -> BoxFuture<'_, Result<PlanView, AppFailure>> {
        Box::pin(async move {
            let (install, _, _) = self.prepare(&request, Actor::system("plan")).await?;
            Ok(PlanView {
                app: install.id.clone(),
                version: install.manifest.version().to_owned(),
                base_url: install.base_url.clone(),
                objects: self.plan_objects(&install),
            })
        })
    }

    fn install(
        &self,
        request: InstallRequest,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>> {
        // Its own task, as an uninstall: a cut-off request must not leave a claimed install
        // with no task running it.
        let registry = self.clone();
        Box::pin(async move {
            tokio::spawn(async move { registry.start_install(request, actor).await })
                .await
                .map_err(|e| AppFailure::Internal(format!("the install stopped: {e}")))?
        })
    }

    fn status(&self, id: String) -> BoxFuture<'_, Result<AppView, AppFailure>> {
        Box::pin(async move {
            if let Some(view) = self.progress().get(&id).cloned() {
                return Ok(view);
            }
            match self
                .inner
                .state
                .store
                .installed_app(&id)
                .await
                .map_err(store_failure)?
            {
                Some(app) => self.view_of(&app),
                None => Err(AppFailure::NotFound(format!("app {id}"))),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<AppView>, AppFailure>> {
        Box::pin(async move {
            let installed = self
                .inner
                .state
                .store
                .installed_apps()
                .await
                .map_err(store_failure)?;
            let progress = self.progress().clone();
            let mut views: Vec<AppView> = installed
                .iter()
                .filter(|a| !progress.contains_key(&a.id))
                .map(|a| self.view_of(a))
                .collect::<Result<_, _>>()?;
            views.extend(progress.into_values());
            views.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(views)
        })
    }

    fn uninstall(
        &self,
        id: String,
        purge: bool,
        actor: Actor,
    ) -> BoxFuture<'_, Result<(), AppFailure>> {
        // Its own task: a request cut off (the request timeout, a closed connection) must not
        // stop an uninstall halfway.
        let registry = self.clone();
        Box::pin(async move {
            tokio::spawn(async move { registry.uninstall_now(&id, purge, actor).await })
                .await
                .map_err(|e| AppFailure::Internal(format!("the uninstall stopped: {e}")))?
        })
    }

    fn upgrade(
        &self,
        id: String,
        version: Option<String>,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>> {
        // Its own task, as an uninstall: a cut-off request must not leave an upgrade halfway,
        // without its rollback.
        let registry = self.clone();
        Box::pin(async move {
            tokio::spawn(async move {
                Registry::upgrade(&registry, &id, version.as_deref(), actor).await
            })
            .await
            .map_err(|e| AppFailure::Internal(format!("the upgrade stopped: {e}")))?
        })
    }

    fn apply_updates(&self) -> BoxFuture<'_, Result<Vec<UpdateView>, AppFailure>> {
        let registry = self.clone();
        Box::pin(async move {
            tokio::spawn(async move { Registry::apply_updates(&registry).await })
                .await
                .map_err(|e| AppFailure::Internal(format!("the updates stopped: {e}")))?
        })
    }

    fn launcher(
        &self,
        username: String,
        groups: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<LauncherEntry>, AppFailure>> {
        Box::pin(async move {
            let apps = self
                .inner
                .state
                .store
                .installed_apps()
                .await
                .map_err(store_failure)?;
            let mut entries = Vec::new();
            for app in apps.iter().filter(|a| a.status == AppStatus::Installed) {
                let Ok(manifest) = Manifest::parse(&app.manifest) else {
                    continue;
                };
                // The same rule the app's client and the edge apply.
                let access = app_access(&manifest, &app.user_groups, &app.admin_groups);
                let Some(role) = access.role(&username, &groups) else {
                    continue;
                };
                let role = if role == access.admin_role {
                    "admin"
                } else {
                    "user"
                };
                entries.push(LauncherEntry {
                    id: app.id.clone(),
                    name: manifest.name.clone(),
                    description: manifest.description.trim().to_owned(),
                    url: format!("{}/", app.base_url),
                    icon: manifest.icon.clone(),
                    role: role.to_owned(),
                });
            }
            Ok(entries)
        })
    }

    fn set_access(
        &self,
        id: String,
        access: AccessRequest,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>> {
        Box::pin(async move {
            let _change = self.begin_change(&id, "given new access")?;
            let user_groups = self
                .existing_groups("user_groups", &access.user_groups)
                .await?;
            let admin_groups = self
                .existing_groups("admin_groups", &access.admin_groups)
                .await?;
            let store = &self.inner.state.store;
            let entry = actor
                .entry("app.access", Target::System)
                .with_detail(serde_json::json!({ "app": id, "user_groups": user_groups, "admin_groups": admin_groups }));
            let all: Vec<String> = user_groups.iter().chain(&admin_groups).cloned().collect();
            if !store
                .set_app_access(&id, &user_groups, &admin_groups, &all, &entry)
                .await
                .map_err(store_failure)?
            {
                return Err(AppFailure::NotFound(format!("app {id}")));
            }
            // The app's OIDC client admits the new groups, with the new roles, from now on.
            if let Some(stored) = store.get_client(&id).await.map_err(store_failure)?
                && let Some(app) = store.installed_app(&id).await.map_err(store_failure)?
            {
                let manifest = Manifest::parse(&app.manifest).map_err(problems_view)?;
                let before = stored.client.access.clone();
                let mut client = stored.client;
                let after = app_access(&manifest, &user_groups, &admin_groups);
                client.access = Some(after.clone());
                let entry = actor
                    .entry("client.update", Target::System)
                    .with_detail(serde_json::json!({ "client": id, "access": client.access }));
                store
                    .update_client(&client, &entry)
                    .await
                    .map_err(store_failure)?;
                // Whoever's role changed is signed out of this app (and only of it), so their
                // next sign-in there carries the new role, or is refused.
                let mut affected = Vec::new();
                for (session, user) in store.client_sessions(&id).await.map_err(store_failure)? {
                    let username = store.get_user(user).await.map_err(store_failure)?.username;
                    let groups: Vec<String> = store
                        .groups_of(user)
                        .await
                        .map_err(store_failure)?
                        .into_iter()
                        .map(|g| g.name)
                        .collect();
                    let was = before.as_ref().and_then(|a| a.role(&username, &groups));
                    if was != after.role(&username, &groups) {
                        affected.push((session, user));
                    }
                }
                let entry = actor.entry("app.sign_out", Target::System);
                let deliveries = store
                    .sign_out_of_client(&client, &affected, "access changed", &entry)
                    .await
                    .map_err(store_failure)?;
                stackgate_web::oidc::sign_off::deliver_all(&self.inner.state, deliveries);
            }
            if let Some(edge) = self.inner.state.edge.get() {
                edge.reload().await.map_err(internal)?;
            }
            match store.installed_app(&id).await.map_err(store_failure)? {
                Some(app) => self.view_of(&app),
                None => Err(AppFailure::NotFound(format!("app {id}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::app_access;
    use crate::Catalog;

    /// Every catalog app's role mapping: a plain user gets the user value, never the admin one,
    /// whatever other groups they are in; only admin groups and Stackgate's admins get it.
    #[test]
    fn no_catalog_app_gives_a_plain_user_its_admin_role() {
        let groups = |g: &[&str]| g.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let catalog = Catalog::shipped().expect("catalog");
        for entry in catalog.latest_entries() {
            let m = &entry.manifest;
            let access = app_access(m, &groups(&["staff"]), &groups(&["it"]));
            let id = m.id();
            for plain in [&["staff"][..], &["staff", "press"], &["staff", "users"]] {
                let role = access.role("ana", &groups(plain));
                assert_eq!(
                    role,
                    Some(m.access.roles.user.value.as_str()),
                    "{id}: {plain:?}"
                );
                assert_ne!(
                    role,
                    Some(m.access.roles.admin.value.as_str()),
                    "{id}: {plain:?}"
                );
            }
            assert_eq!(
                access.role("ana", &groups(&["press"])),
                None,
                "{id}: outsiders get nothing"
            );
            assert_eq!(
                access.role("ana", &groups(&["it"])),
                Some(m.access.roles.admin.value.as_str())
            );
            assert_eq!(
                access.role("ana", &groups(&["admins"])),
                Some(m.access.roles.admin.value.as_str())
            );
        }
    }
}
