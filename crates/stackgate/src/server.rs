//! The composition root: opens the store, builds the services and the router, and serves them
//! until told to stop. Tests start the same server in-process through [`start`].

use crate::{CliError, config::Config};
use stackgate_identity::{Clock, PasswordHasher, SecretToken};
use stackgate_oidc::{MasterKey, MasterKeys};
use stackgate_store::{Backend, Store, StoreOptions};
use stackgate_web::{AppState, Metrics, WebConfig, oidc::keyring::Keyring};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// Opens (and on SQLite creates) the database and applies migrations.
pub async fn open_store(config: &Config, clock: Arc<dyn Clock>) -> Result<Store, CliError> {
    create_data_dir(config)?;
    let options = StoreOptions {
        max_connections: config.database_max_connections,
        ..StoreOptions::new(&config.database_url)
    };
    let store = Store::connect(&options, clock).await?;
    store.migrate().await?;
    Ok(store)
}

fn create_data_dir(config: &Config) -> Result<(), CliError> {
    let dir = &config.data_dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::Usage(format!("data_dir: cannot create {}: {e}", dir.display()))
        })?;
        // The folder will hold the database and key files: its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The key file in `data_dir` when `master_key` is not configured.
pub const MASTER_KEY_FILE: &str = "master.key";
/// A key waiting to replace the key file at the next start (`stackgate master-key rotate`).
pub const NEXT_MASTER_KEY_FILE: &str = "master.key.next";

/// The master key: from config, or from `data_dir/master.key`, created (mode 0600) on first start.
pub fn master_key(config: &Config) -> Result<MasterKey, CliError> {
    let encoded = match &config.master_key {
        Some(key) => key.clone(),
        None => {
            create_data_dir(config)?;
            let path = config.data_dir.join(MASTER_KEY_FILE);
            if path.exists() {
                read_key_file(&path)?
            } else {
                let key = MasterKey::generate().map_err(|e| CliError::Runtime(e.to_string()))?;
                write_private(&path, &key)?;
                tracing::info!(path = %path.display(), "created the master key file; back it up with the database");
                key
            }
        }
    };
    MasterKey::from_base64(&encoded).map_err(|e| CliError::Usage(format!("master_key: {e}")))
}

/// The key that seals, and the keys being rotated out: `previous_master_keys`, plus the key
/// file itself while `master.key.next` waits to replace it.
pub fn master_keys(config: &Config) -> Result<MasterKeys, CliError> {
    let mut previous = config
        .previous_master_keys
        .iter()
        .map(|key| {
            MasterKey::from_base64(key)
                .map_err(|e| CliError::Usage(format!("previous_master_keys: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = master_key(config)?;
    let next = pending_master_key(config)?;
    Ok(match next {
        Some(next) => {
            previous.push(key);
            MasterKeys::new(next, previous)
        }
        None => MasterKeys::new(key, previous),
    })
}

/// The key `master.key.next` holds, in key-file mode.
fn pending_master_key(config: &Config) -> Result<Option<MasterKey>, CliError> {
    let path = config.data_dir.join(NEXT_MASTER_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    if config.master_key.is_some() {
        tracing::warn!(path = %path.display(), "ignoring the pending key file: master_key is configured");
        return Ok(None);
    }
    let key = MasterKey::from_base64(&read_key_file(&path)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Ok(Some(key))
}

/// Makes the pending key the key file, once every value is sealed under it. The old key is kept
/// as `master.key.retired-ID`: backups taken before the rotation need it to be restored. Each
/// step can be interrupted: the next start finds the same state or a later one.
fn finish_master_key_rotation(config: &Config, keys: &MasterKeys) -> Result<(), CliError> {
    let next = config.data_dir.join(NEXT_MASTER_KEY_FILE);
    if config.master_key.is_some() || !next.exists() {
        return Ok(());
    }
    let current = config.data_dir.join(MASTER_KEY_FILE);
    let old_key = read_key_file(&current)?;
    let old = MasterKey::from_base64(&old_key)
        .map_err(|e| CliError::Usage(format!("{}: {e}", current.display())))?;
    let retired = config.data_dir.join(format!(
        "{MASTER_KEY_FILE}.retired-{}",
        old.id().replace(['/', '+'], "_")
    ));
    if !retired.exists() {
        write_private(&retired, &old_key)?;
    }
    std::fs::rename(&next, &current)?;
    std::fs::File::open(&config.data_dir)?.sync_all()?;
    tracing::info!(
        master_key_id = keys.current().id(),
        retired = %retired.display(),
        "the new master key is in use; the old one is kept for restoring older backups (delete it when they are gone)"
    );
    Ok(())
}

fn read_key_file(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("master_key: cannot read {}: {e}", path.display())))
}

pub(crate) fn write_private(path: &std::path::Path, contents: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        CliError::Usage(format!("master_key: cannot create {}: {e}", path.display()))
    })?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Opens the signing keys (creating the first ones), resealing what a previous master key
/// sealed.
pub async fn keyring(config: &Config, store: &Store) -> Result<Keyring, CliError> {
    let keyring = Keyring::open(store.clone(), master_keys(config)?)
        .await
        .map_err(|e| CliError::Runtime(format!("signing keys: {e}")))?;
    finish_master_key_rotation(config, keyring.master_keys())?;
    Ok(keyring)
}

/// A server running in this process.
pub struct Running {
    pub local_addr: SocketAddr,
    /// Where the edge proxy listens, when it is on.
    pub proxy_addr: Option<SocketAddr>,
    edge_tasks: Vec<JoinHandle<()>>,
    registry: stackgate_apps::Registry,
    /// The one-time link that creates the first admin, when none exists yet.
    pub setup_link: Option<String>,
    pub store: Store,
    pub keyring: Arc<Keyring>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Opens everything and starts accepting connections on `config.listen`.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, CliError> {
    let listener = bind(config.listen)
        .map_err(|e| CliError::Usage(format!("listen: cannot listen on {}: {e}", config.listen)))?;
    start_on(config, clock, listener).await
}

/// Connections the kernel completes and queues while the accept loop is busy. The usual default
/// (128 here) overflows when a few hundred browsers connect at once: each connection dropped
/// from the queue waits a second or more for its SYN to be sent again. The kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Like [`start`], on a listener the caller bound (tests bind port 0 first, to know the issuer).
pub async fn start_on(
    config: &Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> Result<Running, CliError> {
    let kube = stackgate_apps::kubernetes::connect(&config.apps_kubernetes_namespace_prefix)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "apps that run on Kubernetes cannot be installed");
            None
        });
    start_with_cluster(config, clock, listener, kube).await
}

/// Like [`start_on`], with the Kubernetes driver given (tests give one on kube's mock service).
pub async fn start_with_cluster(
    config: &Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    kube: Option<stackgate_apps::kubernetes::KubeDriver>,
) -> Result<Running, CliError> {
    let store = open_store(config, clock.clone()).await?;
    let hasher = PasswordHasher::new(config.argon2, config.password)?;
    let keyring = Arc::new(keyring(config, &store).await?);
    let maintenance_clock = clock.clone();
    let setup_link = if store.admin_exists().await? {
        None
    } else {
        let link = SecretToken::generate("")?;
        store
            .issue_setup_token(&link.hash, config.setup_link_ttl)
            .await?;
        Some(format!(
            "{}/setup?token={}",
            config.issuer_str(),
            link.plaintext
        ))
    };
    let web_config = WebConfig {
        issuer: config.issuer_str().to_owned(),
        origin: config.issuer.origin().ascii_serialization(),
        organisation_name: config.organisation_name.clone(),
        logo: match &config.organisation_logo {
            Some(path) => {
                let bytes = std::fs::read(path)?;
                let kind = crate::config::logo_content_type(path).unwrap_or("image/png");
                Some(Arc::new((kind, bytes)))
            }
            None => None,
        },
        brand_colour: config.brand_colour.clone(),
        session_idle_timeout: config.session_idle_timeout,
        session_lifetime: config.session_lifetime,
        mfa_policy: config.mfa_policy,
        invitation_lifetime: config.invitation_lifetime,
        password_reset_lifetime: config.password_reset_lifetime,
    };
    let mailer = match &config.smtp_url {
        Some(url) => Some(Arc::new(
            stackgate_mail::Mailer::with_ca(url, &config.smtp_from, config.smtp_ca.as_deref())
                .map_err(|e| CliError::Usage(e.to_string()))?,
        )),
        None => None,
    };
    let state = AppState {
        store: store.clone(),
        hasher,
        clock,
        metrics: Arc::new(Metrics::new()),
        keyring: keyring.clone(),
        http: stackgate_web::oidc::sign_off::http_client(),
        webauthn: web_config
            .webauthn()
            .map_err(|reason| tracing::warn!(%reason, "security keys and passkeys are off"))
            .ok()
            .map(Arc::new),
        throttle: Arc::default(),
        edge: Arc::default(),
        apps: Arc::default(),
        mailer,
        settings: Arc::new(stackgate_web::settings::LiveSettings::from_config(
            &web_config,
        )),
        config: Arc::new(web_config),
    };
    // The console's settings are in force from the first request.
    state
        .settings
        .reload(&state.store, &state.config)
        .await
        .map_err(|e| CliError::Runtime(format!("settings: {e}")))?;
    let sweeper_state = state.clone();
    let local_addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let edge = match &config.proxy {
        Some(proxy) => Some(start_edge(config, proxy, &state, stop.subscribe()).await?),
        None => None,
    };
    let registry =
        start_registry(config, &state, edge.as_ref().map(|(addr, _)| *addr), kube).await?;
    {
        let registry = registry.clone();
        let stopped = stop.subscribe();
        tokio::spawn(async move { registry.supervise(stopped).await });
    }
    tokio::spawn(apply_update_policies(
        registry.clone(),
        Duration::from_secs(config.apps_update_interval),
        stop.subscribe(),
    ));
    let app = stackgate_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(follow_settings(sweeper_state.clone(), stop.subscribe()));
    tokio::spawn(end_expired_sessions(sweeper_state, stop.subscribe()));
    let watched = store.clone();
    tokio::spawn(async move { watched.watch_sessions().await });
    tokio::spawn(maintain_keys(
        keyring.clone(),
        maintenance_clock,
        config.signing_key_rotation,
        stop.subscribe(),
    ));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(
        address = %local_addr,
        database = store.backend().name(),
        "Stackgate is listening"
    );
    let (proxy_addr, edge_tasks) = edge.unzip();
    Ok(Running {
        local_addr,
        proxy_addr,
        edge_tasks: edge_tasks.unwrap_or_default(),
        registry,
        setup_link,
        store,
        keyring,
        stop,
        task,
        grace: Duration::from_secs(config.shutdown_grace),
    })
}

/// Opens the app registry and reconciles installed apps with what runs (starting their
/// processes, undoing an install a crash interrupted).
async fn start_registry(
    config: &Config,
    state: &AppState,
    proxy_addr: Option<SocketAddr>,
    kube: Option<stackgate_apps::kubernetes::KubeDriver>,
) -> Result<stackgate_apps::Registry, CliError> {
    use stackgate_apps::{Registry, RegistrySettings, registry::EdgePublic};
    let https = config.issuer.scheme() == "https"
        || config.proxy.as_ref().is_some_and(|p| p.tls_dir.is_some());
    // Programs are looked for beside this binary; under `cargo test` that is target/*/deps, and
    // the `stackgate` binary sits one level up.
    let programs_dir = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?.to_owned();
        Some(if dir.ends_with("deps") {
            dir.parent().map_or(dir.clone(), std::path::Path::to_owned)
        } else {
            dir
        })
    });
    let settings = RegistrySettings {
        kube,
        data_dir: config.data_dir.clone(),
        issuer: config.issuer_str().to_owned(),
        apps_domain: config.apps_domain.clone(),
        edge: proxy_addr.map(|addr| EdgePublic {
            scheme: if https { "https" } else { "http" }.into(),
            port: addr.port(),
        }),
        programs_dir,
        catalog_dir: config.apps_catalog_dir.clone(),
        fail_step: config.apps_test_fail_step.clone(),
        app_uids: config.apps_uids.clone(),
    };
    let registry = Registry::new(state.clone(), settings)
        .map_err(|e| CliError::Runtime(format!("apps: {e}")))?;
    let _ = state.apps.set(Arc::new(registry.clone()));
    registry
        .reconcile()
        .await
        .map_err(|e| CliError::Runtime(format!("apps: {e}")))?;
    Ok(registry)
}

/// Applies installed apps' update policies now and then, until the server stops.
async fn apply_update_policies(
    registry: stackgate_apps::Registry,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match registry.apply_updates().await {
            Ok(done) => {
                for update in done {
                    tracing::info!(app = %update.app, from = %update.from, to = %update.to, outcome = %update.outcome, "update policy applied");
                }
            }
            Err(err) => tracing::warn!(%err, "cannot apply update policies"),
        }
    }
}

/// Starts the edge proxy (and its HTTP→HTTPS redirect): its listeners, its routes and policies,
/// and its reloads when they change.
async fn start_edge(
    config: &Config,
    proxy: &crate::proxy_config::ProxyConfig,
    state: &AppState,
    stopped: watch::Receiver<bool>,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>), CliError> {
    use stackgate_proxy::{CertResolver, Edge, EdgeSettings, Listener};
    let runtime = |e: stackgate_proxy::ProxyError| CliError::Runtime(format!("edge proxy: {e}"));
    let tcp = bind(proxy.listen).map_err(|e| {
        CliError::Usage(format!(
            "proxy_listen: cannot listen on {}: {e}",
            proxy.listen
        ))
    })?;
    let proxy_addr = tcp.local_addr()?;
    let tls = match &proxy.tls_dir {
        Some(dir) => {
            let resolver = CertResolver::open(dir).map_err(runtime)?;
            resolver.clone().watch(Duration::from_secs(2));
            Some(resolver.server_config().map_err(runtime)?)
        }
        None => None,
    };
    // Behind another TLS terminator the edge listens in plain HTTP, but people reach it over
    // HTTPS: cookies and return URLs follow the public scheme.
    let https = tls.is_some() || config.issuer.scheme() == "https";
    let mut public_ports = vec![if https { 443 } else { 80 }, proxy_addr.port()];
    public_ports.extend(config.issuer.port_or_known_default());
    public_ports.extend(&proxy.public_ports);
    let settings = EdgeSettings {
        issuer: config.issuer_str().to_owned(),
        https,
        public_ports,
        live: state.settings.clone(),
        headers: proxy
            .headers
            .to_identity_headers()
            .map_err(CliError::Usage)?,
        upstream_connect_timeout: proxy.upstream_connect_timeout,
        upstream_response_timeout: proxy.upstream_response_timeout,
        client_send_timeout: proxy.body_idle_timeout,
        upstream_max_connections: proxy.upstream_max_connections,
        upstream_metrics: state.metrics.upstream(),
        default_policies: proxy
            .policies
            .clone()
            .unwrap_or_else(|| stackgate_proxy::access::DEFAULT_POLICIES.to_owned()),
        routes: proxy.routes.clone(),
        cookie_domain: proxy.cookie_domain.clone(),
    };
    let edge = Edge::open(
        settings,
        state.store.clone(),
        state.keyring.clone(),
        state.clock.clone(),
        stackgate_web::router(state.clone()),
    )
    .await
    .map_err(runtime)?;
    let _ = state.edge.set(edge.clone());
    edge.follow_changes();
    let listener = Listener {
        tls,
        header_read_timeout: proxy.header_read_timeout,
        max_header_bytes: proxy.max_header_bytes,
        max_headers: proxy.max_headers,
        body_idle_timeout: proxy.body_idle_timeout,
        max_connections: proxy.max_connections,
        threads: proxy.threads,
        grace: Duration::from_secs(config.shutdown_grace),
        metrics: state.metrics.listener("edge"),
    };
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    if let Some(redirect) = proxy.redirect_listen {
        let plain = bind(redirect).map_err(|e| {
            CliError::Usage(format!(
                "proxy_redirect_listen: cannot listen on {redirect}: {e}"
            ))
        })?;
        tasks.push(tokio::spawn(stackgate_proxy::serve_redirect(
            plain,
            proxy_addr.port(),
            Listener {
                tls: None,
                metrics: state.metrics.listener("redirect"),
                threads: 0,
                ..listener.clone()
            },
            until_stopped(stopped.clone()),
        )));
    }
    tasks.push(tokio::spawn(stackgate_proxy::serve(
        edge,
        tcp,
        listener,
        until_stopped(stopped),
    )));
    tracing::info!(address = %proxy_addr, https = proxy.tls_dir.is_some(), routes = proxy.routes.len(), "edge proxy is listening");
    Ok((proxy_addr, tasks))
}

/// Every minute: ends sessions past their limits, with the same fan-out as a sign-out.
/// Reads the console's settings again every few seconds, so a change made on another replica
/// applies here too.
async fn follow_settings(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(err) = state.settings.reload(&state.store, &state.config).await {
            tracing::warn!(%err, "cannot read the settings");
        }
    }
}

async fn end_expired_sessions(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(err) = stackgate_web::oidc::sign_off::end_expired(&state).await {
            tracing::warn!(%err, "cannot end expired sessions");
        }
    }
}

/// Rotates the signing keys when the current ones are `rotation` seconds old; otherwise picks up
/// keys another replica may have rotated. Returns whether it rotated.
pub async fn rotate_keys_if_due(
    keyring: &Keyring,
    clock: &dyn Clock,
    rotation: i64,
) -> Result<bool, stackgate_web::oidc::keyring::KeyringError> {
    let due = match keyring.current_key_created_at().await? {
        Some(created) => created + rotation <= clock.unix(),
        None => true,
    };
    if due {
        keyring.rotate().await?;
    } else {
        keyring.reload().await?;
    }
    Ok(due)
}

/// Every minute: picks up keys another replica rotated, and rotates when the current key is
/// older than `rotation` seconds.
async fn maintain_keys(
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    rotation: i64,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(err) = rotate_keys_if_due(&keyring, clock.as_ref(), rotation).await {
            tracing::warn!(%err, "signing key maintenance failed");
        }
    }
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the grace period), closes the database.
    pub async fn shutdown(self) -> Result<(), CliError> {
        let _ = self.stop.send(true);
        self.registry.shutdown().await;
        let edge = futures_join_all(self.edge_tasks);
        if tokio::time::timeout(self.grace, edge).await.is_err() {
            tracing::warn!(grace = ?self.grace, "edge connections did not finish in time");
        }
        match tokio::time::timeout(self.grace, self.task).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => return Err(CliError::Runtime(format!("server task failed: {join}"))),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "in-flight requests did not finish in time")
            }
        }
        self.store.close().await;
        if self.store.backend() == Backend::Sqlite {
            tracing::info!("database closed");
        }
        Ok(())
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
