//! One request at the edge: which host, which route, who is calling, may they, then forward.

use crate::{
    ProxyError,
    access::{AccessPolicy, Decision},
    identity::{Assertions, IdentityHeaders, Told, add_identity},
    pages,
    paths::{BadPath, canonical_path},
    routes::{Route, RouteTable, normalise_host},
    upstream::{Forwarder, Hop, Peer, TunnelClosed, sanitise_request, websocket_upgrade},
};
use axum::{body::Body, extract::ConnectInfo};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    header::{self, HeaderValue},
};
use stackgate_identity::{Clock, SecretToken, hash_secret};
use stackgate_store::{Session, SessionChange, Store};
use stackgate_web::oidc::keyring::Keyring;
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};
use tower::ServiceExt;

/// Where the login host hands a sign-in over to an app's host.
pub(crate) const CALLBACK_PATH: &str = "/.stackgate/callback";
/// The login host's page that starts that hand-over.
pub(crate) const SIGN_IN_PATH: &str = "/proxy/sign-in";

/// The edge's settings, validated by the binary's config loader.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The issuer, no trailing slash.
    pub issuer: String,
    /// Whether the edge serves HTTPS (decides cookie names and flags, and redirect schemes).
    pub https: bool,
    /// The ports people reach app hosts on (the scheme's default, the issuer's, the one the
    /// edge listens on): a sign-in is handed over to no other port of an app's host, where
    /// another program could be listening (cookies do not tell ports apart).
    pub public_ports: Vec<u16>,
    /// The session lifetimes and sign-in policy in force, which admins may change at runtime.
    pub live: Arc<stackgate_web::settings::LiveSettings>,
    pub headers: IdentityHeaders,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    /// How long a client may take nothing of an answer that is still being read from its
    /// upstream (`proxy_body_idle_timeout`): the listener's send timeout cuts off an HTTP/1
    /// connection that stalls, and this an HTTP/2 stream.
    pub client_send_timeout: Duration,
    /// Connections open at once to one upstream; past that, requests wait for one.
    pub upstream_max_connections: usize,
    /// Where requests refused at that cap are counted.
    pub upstream_metrics: stackgate_web::UpstreamMetrics,
    /// Cedar default policies (from `policies/`), beside those generated from routes.
    pub default_policies: String,
    /// Routes from the config file.
    pub routes: Vec<Route>,
    /// Parent-domain cookie mode: one edge cookie for this domain and every host under it, so
    /// a sign-in on one app's host opens every app under the domain. `None`: a cookie per host.
    pub cookie_domain: Option<String>,
}

/// How often assertions too old to be reused are dropped.
const CACHE_SWEEP: Duration = Duration::from_secs(30);

/// How often an open WebSocket tunnel re-checks its session when nothing was announced.
const TUNNEL_RECHECK: Duration = Duration::from_secs(10);

/// What a WebSocket tunnel was opened under, to re-check while it stays open.
pub(crate) struct Tunnel {
    session: Arc<Session>,
    secret_hash: String,
    host: String,
    path: String,
    app: String,
}

/// Where a proxy session stands on a route.
enum Standing {
    Allowed(Arc<Session>),
    /// Unknown, ended or not strong enough: sign in (again).
    SignIn,
    Denied,
    Unavailable,
}

/// The edge's own cookies under one scheme (over HTTPS with the prefixes browsers enforce).
struct CookieNames {
    /// A proxy session on one host.
    session: &'static str,
    /// A proxy session on every host under the parent domain.
    shared_session: &'static str,
    /// Ties a sign-in hand-over to the browser that started it.
    state: &'static str,
    all: [&'static str; 3],
}

impl CookieNames {
    const fn new(session: &'static str, shared_session: &'static str, state: &'static str) -> Self {
        CookieNames {
            session,
            shared_session,
            state,
            all: [session, shared_session, state],
        }
    }
}

static HTTPS_COOKIES: CookieNames = CookieNames::new(
    "__Host-stackgate_proxy",
    "__Secure-stackgate_proxy_shared",
    "__Host-stackgate_state",
);
static HTTP_COOKIES: CookieNames = CookieNames::new(
    "stackgate_proxy",
    "stackgate_proxy_shared",
    "stackgate_state",
);

/// Work handed to the shared runtime, cancelled if the request that handed it over goes away
/// (its client left, or its thread stopped), as it would be if it ran in the request itself.
struct EndsWithRequest<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for EndsWithRequest<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The edge: routes, policies and everything a request needs, shared by every connection.
pub struct Edge {
    pub(crate) settings: EdgeSettings,
    issuer_host: String,
    /// The session scope of every host under the parent domain (`*.domain`), in that mode.
    shared_scope: Option<String>,
    pub(crate) store: Store,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    web: axum::Router,
    /// The runtime the edge was opened on, where the login host's requests run when the edge
    /// serves on threads of its own.
    shared: tokio::runtime::Handle,
    routes: RwLock<Arc<RouteTable>>,
    access: RwLock<Arc<AccessPolicy>>,
    forwarder: Forwarder,
    assertions: Assertions,
    /// Bumped after each reload of routes and policies, for open tunnels to re-check.
    reloaded: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// What the checks decided about a request for a protected app.
pub(crate) enum Verdict {
    /// Let through, as this session.
    Allowed(Arc<Session>),
    /// A public path: let through without identity.
    Public,
    /// Not signed in (or not strongly enough): go and sign in.
    SignIn(SignIn),
    /// Signed in, refused by the access policy.
    Denied,
    /// The store could not answer.
    Unavailable,
}

impl Edge {
    /// Builds the edge and loads its routes and policies; fails on a route or policy that does
    /// not compile, so a bad config never starts.
    pub async fn open(
        settings: EdgeSettings,
        store: Store,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        web: axum::Router,
    ) -> Result<Arc<Self>, ProxyError> {
        let issuer_host = url::Url::parse(&settings.issuer)
            .ok()
            .and_then(|u| u.host_str().and_then(normalise_host))
            .ok_or_else(|| {
                ProxyError::Config(format!("issuer {:?} has no host", settings.issuer))
            })?;
        let forwarder = Forwarder::new(
            settings.upstream_connect_timeout,
            settings.upstream_response_timeout,
            settings.client_send_timeout,
            settings.upstream_max_connections,
            settings.upstream_metrics.clone(),
        );
        let shared_scope = settings
            .cookie_domain
            .as_ref()
            .map(|domain| format!("*.{domain}"));
        let edge = Arc::new(Edge {
            settings,
            issuer_host,
            shared_scope,
            store,
            keyring,
            clock,
            web,
            shared: tokio::runtime::Handle::current(),
            routes: RwLock::new(Arc::default()),
            access: RwLock::new(Arc::new(AccessPolicy::empty())),
            forwarder,
            assertions: Assertions::default(),
            reloaded: tokio::sync::watch::Sender::new(0),
        });
        edge.reload().await?;
        Ok(edge)
    }

    /// Re-reads runtime routes and the admins' policy; keeps the old ones if the new do not
    /// compile (the API refuses such changes, so this means two replicas disagree on versions).
    pub async fn reload(&self) -> Result<(), ProxyError> {
        let mut routes = self.settings.routes.clone();
        for stored in self.store.proxy_routes().await? {
            let mut route = Route::new(
                &stored.host,
                &stored.path_prefix,
                &stored.upstream,
                &stored.app,
                stored.groups,
                stored.public_paths,
            )?;
            route.id = Some(stored.id.to_string());
            route.roles = stored.roles;
            routes.push(route);
        }
        let table = RouteTable::new(routes)?;
        let custom = self.store.access_policy().await?;
        let access = AccessPolicy::compile(&self.settings.default_policies, &table, &custom)
            .map_err(ProxyError::Policy)?;
        if let Ok(mut slot) = self.routes.write() {
            *slot = Arc::new(table);
        }
        if let Ok(mut slot) = self.access.write() {
            *slot = Arc::new(access);
        }
        self.reloaded.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reloads whenever the store says routes or policies changed, and keeps the per-session
    /// caches to the sessions still alive, until the process ends.
    pub fn follow_changes(self: &Arc<Self>) {
        self.forget_ended_sessions();
        let edge = Arc::downgrade(self);
        let mut changes = self.store.proxy_changes();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(edge) = edge.upgrade() else { return };
                if let Err(err) = edge.reload().await {
                    tracing::warn!(%err, "cannot reload proxy routes and policies; keeping the previous ones");
                }
            }
        });
    }

    /// Drops cached principals and assertions of sessions that ended, and assertions too old to
    /// be reused, so the caches follow the live sessions instead of every session ever seen.
    fn forget_ended_sessions(self: &Arc<Self>) {
        let edge = Arc::downgrade(self);
        let mut changes = self.store.session_changes();
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(CACHE_SWEEP);
            loop {
                let change = tokio::select! {
                    change = changes.recv() => match change {
                        Ok(change) => Some(change),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            Some(SessionChange::All)
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = sweep.tick() => None,
                };
                let Some(edge) = edge.upgrade() else { return };
                match change {
                    Some(change) => {
                        edge.assertions.forget(change);
                        edge.access().forget(change);
                    }
                    None => edge.assertions.sweep(edge.clock.unix()),
                }
            }
        });
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        match self.routes.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn access(&self) -> Arc<AccessPolicy> {
        match self.access.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn cookies(&self) -> &'static CookieNames {
        if self.settings.https {
            &HTTPS_COOKIES
        } else {
            &HTTP_COOKIES
        }
    }

    /// The edge cookie a request for `host` carries: the host's own, or the shared one when the
    /// host is under the parent domain (`__Host-` cookies cannot name a domain).
    pub(crate) fn cookie_name(&self, host: &str) -> &'static str {
        match self.shared_domain(host) {
            Some(_) => self.cookies().shared_session,
            None => self.cookies().session,
        }
    }

    /// Every cookie of the edge's own, which apps must neither see nor set (the shared one too
    /// when parent-domain mode is off: no app has a use for it).
    fn edge_cookies(&self) -> &'static [&'static str] {
        &self.cookies().all
    }

    /// The parent domain whose shared cookie `host` uses, if any.
    fn shared_domain(&self, host: &str) -> Option<&str> {
        let domain = self.settings.cookie_domain.as_deref()?;
        in_domain(host, domain).then_some(domain)
    }

    /// Where a proxy session opened on `host` is valid: that host, or (parent-domain mode) every
    /// host under the domain, written so it can be no host's name.
    fn session_scope<'a>(&'a self, host: &'a str) -> &'a str {
        match (&self.shared_scope, self.shared_domain(host)) {
            (Some(scope), Some(_)) => scope,
            _ => host,
        }
    }

    /// The cookie that ties a sign-in hand-over to the browser that started it.
    pub(crate) fn state_cookie_name(&self) -> &'static str {
        self.cookies().state
    }

    pub(crate) fn issuer_host(&self) -> &str {
        &self.issuer_host
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.settings.https { "https" } else { "http" }
    }

    /// Serves one request from a client at `peer`.
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<Body>,
        peer: Peer,
    ) -> Response<Body> {
        let Some((host, host_as_sent)) = request_host(&request) else {
            return pages::status(StatusCode::BAD_REQUEST, "The request names no host.");
        };
        if host == self.issuer_host {
            let mut request = request;
            request.extensions_mut().insert(ConnectInfo(peer.addr));
            let web = self.web.clone();
            let answered = async move {
                match web.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            };
            if !crate::connections::on_own_thread() {
                return answered.await;
            }
            // From a thread of the edge's own, to the shared runtime: what these requests
            // start (sign-off notices, app installs) and the database connections they open
            // belong to a runtime that outlives the edge's threads, and their work can move
            // between cores instead of holding up the connections of one thread.
            let mut answering = EndsWithRequest(self.shared.spawn(answered));
            return match (&mut answering.0).await {
                Ok(response) => response,
                Err(err) if err.is_panic() => {
                    tracing::error!("a request for the login host panicked");
                    pages::status(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong. Try again in a moment.",
                    )
                }
                Err(_) => pages::status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Stackgate is stopping. Try again in a moment.",
                ),
            };
        }
        let https = self.settings.https;
        let mut response = self.app_request(request, peer, host, host_as_sent).await;
        // What the login host's pages say, every app host says too: a browser that reached it
        // over HTTPS never tries plain HTTP there again. An app's own HSTS (say, with
        // `includeSubDomains`) is left as it sent it.
        if https {
            response
                .headers_mut()
                .entry(header::STRICT_TRANSPORT_SECURITY)
                .or_insert(HeaderValue::from_static(stackgate_web::HSTS));
        }
        response
    }

    /// A request for an app's host (`host` normalised, `host_as_sent` with its port).
    async fn app_request(
        self: Arc<Self>,
        request: Request<Body>,
        peer: Peer,
        host: String,
        host_as_sent: String,
    ) -> Response<Body> {
        let path = match canonical_path(request.uri().path()) {
            Ok(path) => path,
            Err(BadPath(why)) => {
                return pages::status(
                    StatusCode::BAD_REQUEST,
                    &format!("This address cannot be served: its path has {why}."),
                );
            }
        };
        let routes = self.routes();
        if path == CALLBACK_PATH && routes.has_host(&host) {
            // Boxed: a sign-in's hand-over is rare, and its state (the code's redemption,
            // ~2 KiB) would otherwise be room kept in every request in flight.
            return Box::pin(self.callback(
                &host,
                request.uri().query().unwrap_or(""),
                request.headers(),
            ))
            .await;
        }
        let Some(route) = routes.find(&host, &path).cloned() else {
            return pages::unknown_host(&host);
        };
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        // Needed only to send someone to sign in: built then, not on every request.
        let original_url = || format!("{}://{}{}", self.scheme(), host_as_sent, path_and_query);
        let verdict = self
            .check(
                &route,
                &host,
                request.method(),
                &path,
                request.headers(),
                &original_url,
            )
            .await;
        let (mut parts, body) = request.into_parts();
        // What the app receives is the path that was checked.
        match hyper::Uri::builder().path_and_query(path_and_query).build() {
            Ok(uri) => parts.uri = uri,
            Err(_) => {
                return pages::status(StatusCode::BAD_REQUEST, "This address cannot be served.");
            }
        }
        let tunnel_secret = match &verdict {
            Verdict::Allowed(_) if websocket_upgrade(&parts.headers) => {
                cookie_value(&parts.headers, self.cookie_name(&host)).map(hash_secret)
            }
            _ => None,
        };
        sanitise_request(&mut parts.headers, &self.settings.headers);
        // The app's role header comes from the edge only, on public paths too.
        if let Some(roles) = &route.roles {
            parts.headers.remove(roles.header.as_str());
        }
        remove_cookies(&mut parts.headers, self.edge_cookies());
        let mut tunnel = None;
        match verdict {
            Verdict::Public => {}
            Verdict::Allowed(session) => {
                let told = self.told(&session, &route.app);
                add_identity(&mut parts.headers, &self.settings.headers, told);
                if let Some((name, value)) = route.role_for(&session.user.username, &session.groups)
                    && let (Ok(name), Ok(value)) = (
                        hyper::header::HeaderName::from_bytes(name.as_bytes()),
                        hyper::header::HeaderValue::from_str(value),
                    )
                {
                    parts.headers.insert(name, value);
                }
                tunnel = tunnel_secret.map(|secret_hash| Tunnel {
                    session,
                    secret_hash,
                    host: host.clone(),
                    path: path.clone(),
                    app: route.app.clone(),
                });
            }
            Verdict::SignIn(sign_in) => {
                return if matches!(parts.method, Method::GET | Method::HEAD) {
                    sign_in.redirect()
                } else {
                    pages::status(StatusCode::UNAUTHORIZED, "Sign in first, then try again.")
                };
            }
            Verdict::Denied => return pages::forbidden(&route.app),
            Verdict::Unavailable => {
                return pages::sign_in_unavailable();
            }
        }
        let hop = Hop {
            client_ip: peer.address,
            proto: self.scheme(),
            host: host_as_sent,
        };
        let request = Request::from_parts(parts, body);
        let closed =
            tunnel.map(|tunnel| -> TunnelClosed { Box::pin(self.clone().tunnel_closed(tunnel)) });
        self.forwarder
            .forward(request, &route.upstream, &hop, self.edge_cookies(), closed)
            .await
    }

    /// What to tell `app` about `session`: its identity headers and a signed statement of who
    /// it is.
    pub(crate) fn told(&self, session: &Session, app: &str) -> Told {
        self.assertions.told(
            &self.keyring,
            &self.settings.issuer,
            session,
            app,
            self.clock.unix(),
        )
    }

    /// Where to sign in, bound to this browser: the state cookie it already has for this host,
    /// or a new one to set.
    fn sign_in(&self, headers: &HeaderMap, original_url: &str) -> Verdict {
        let (nonce, fresh) = match cookie_value(headers, self.state_cookie_name()) {
            Some(nonce) if is_token_shaped(nonce) => (nonce.to_owned(), false),
            _ => match SecretToken::generate("") {
                Ok(token) => (token.plaintext, true),
                Err(err) => {
                    tracing::error!(%err, "no randomness for a sign-in state");
                    return Verdict::Unavailable;
                }
            },
        };
        let mut url = format!("{}{SIGN_IN_PATH}?", self.settings.issuer);
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", original_url)
                .append_pair("state", &hash_secret(&nonce))
                .finish(),
        );
        let set_cookie = fresh.then(|| {
            format!(
                "{}={nonce}; Path=/; Max-Age={STATE_LIFETIME}; HttpOnly; SameSite=Lax{}",
                self.state_cookie_name(),
                self.secure_attribute()
            )
        });
        Verdict::SignIn(SignIn { url, set_cookie })
    }

    fn secure_attribute(&self) -> &'static str {
        if self.settings.https { "; Secure" } else { "" }
    }

    /// Session, sign-in policy and access policy for a request to `route` (`path` canonical).
    pub(crate) async fn check(
        &self,
        route: &Route,
        host: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        original_url: &(dyn Fn() -> String + Sync),
    ) -> Verdict {
        if route.is_public(path) {
            return Verdict::Public;
        }
        let Some(secret) = cookie_value(headers, self.cookie_name(host)) else {
            return self.sign_in(headers, &original_url());
        };
        match self
            .standing(&hash_secret(secret), route, host, method, path)
            .await
        {
            Standing::Allowed(session) => Verdict::Allowed(session),
            Standing::SignIn => self.sign_in(headers, &original_url()),
            Standing::Denied => Verdict::Denied,
            Standing::Unavailable => Verdict::Unavailable,
        }
    }

    /// Where the proxy session with this secret digest stands on `route`: live, strong enough
    /// for today's sign-in policy, and allowed by today's access policy.
    async fn standing(
        &self,
        secret_hash: &str,
        route: &Route,
        host: &str,
        method: &Method,
        path: &str,
    ) -> Standing {
        let session = match self
            .store
            .proxy_session(
                secret_hash,
                self.session_scope(host),
                self.settings.live.get().session_idle_timeout,
            )
            .await
        {
            Ok(Some(session)) => session,
            Ok(None) => return Standing::SignIn,
            Err(err) => {
                tracing::warn!(%err, "cannot check a proxy session");
                return Standing::Unavailable;
            }
        };
        // A policy tightened since this session signed in sends it back for a stronger sign-in.
        if !self
            .settings
            .live
            .get()
            .mfa_policy
            .max(session.group_mfa_policy)
            .met_by(&session.amr)
        {
            return Standing::SignIn;
        }
        match self.access().decide(&session, &route.app, method, path) {
            Decision::Allow => Standing::Allowed(session),
            Decision::Deny => Standing::Denied,
        }
    }

    /// Resolves once the session that opened a WebSocket tunnel may no longer use it: signed
    /// out (here or on another replica), expired, its user disabled or moved out of the groups
    /// the access policy wants, the policy or route changed against it. Re-checks on each such
    /// announcement and every [`TUNNEL_RECHECK`] besides (expiry, and notifications that could
    /// not be delivered); a store that cannot answer keeps the tunnel until it can.
    pub(crate) async fn tunnel_closed(self: Arc<Self>, tunnel: Tunnel) {
        let mut changes = self.store.session_changes();
        let mut reloads = self.reloaded.subscribe();
        let mut session_id = tunnel.session.id;
        let mut user_id = tunnel.session.user.id;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) if !change.concerns_ids(session_id, user_id) => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                reloaded = reloads.changed() => if reloaded.is_err() { return },
                () = tokio::time::sleep(TUNNEL_RECHECK) => {}
            }
            let routes = self.routes();
            let Some(route) = routes
                .find(&tunnel.host, &tunnel.path)
                .filter(|r| r.app == tunnel.app)
            else {
                tracing::info!(app = %tunnel.app, "WebSocket closed: its route was removed");
                return;
            };
            match self
                .standing(
                    &tunnel.secret_hash,
                    route,
                    &tunnel.host,
                    &Method::GET,
                    &tunnel.path,
                )
                .await
            {
                Standing::Allowed(session) => {
                    session_id = session.id;
                    user_id = session.user.id;
                }
                Standing::Unavailable => {}
                Standing::SignIn | Standing::Denied => {
                    tracing::info!(app = %tunnel.app, "WebSocket closed: its session ended or lost access");
                    return;
                }
            }
        }
    }

    /// `/.stackgate/callback?code=…&rd=…` on an app's host: trades the one-time code for this
    /// host's cookie and returns to the page the person asked for. The code is honoured only in
    /// the browser that was sent to sign in (its state cookie), so nobody can sign someone else
    /// in to an app as themselves by sending them a link.
    pub(crate) async fn callback(
        &self,
        host: &str,
        query: &str,
        headers: &HeaderMap,
    ) -> Response<Body> {
        let mut code = None;
        let mut rd = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "code" => code = Some(value.into_owned()),
                "rd" => rd = Some(value.into_owned()),
                _ => {}
            }
        }
        let rd = rd
            .filter(|r| is_local_path(r))
            .unwrap_or_else(|| "/".to_owned());
        let expired = || {
            pages::page(
                StatusCode::BAD_REQUEST,
                "This sign-in link has expired",
                "It was used already, is too old, or was opened in another browser. Open the app's address again to sign in.",
            )
        };
        let Some(code) = code.filter(|c| is_token_shaped(c)) else {
            return expired();
        };
        let Some(state) =
            cookie_value(headers, self.state_cookie_name()).filter(|s| is_token_shaped(s))
        else {
            return expired();
        };
        let secret = match SecretToken::generate("") {
            Ok(secret) => secret,
            Err(err) => {
                tracing::error!(%err, "no randomness for a proxy session");
                return pages::status(StatusCode::INTERNAL_SERVER_ERROR, "Try again.");
            }
        };
        match self
            .store
            .redeem_proxy_code(
                &hash_secret(&code),
                host,
                self.session_scope(host),
                &hash_secret(state),
                &secret.hash,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return expired(),
            Err(err) => {
                tracing::warn!(%err, "cannot redeem a proxy sign-in code");
                return pages::sign_in_unavailable();
            }
        }
        let mut response = pages::redirect(&rd);
        let secure = self.secure_attribute();
        let domain = self
            .shared_domain(host)
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        for cookie in [
            format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax{secure}{domain}",
                self.cookie_name(host),
                secret.plaintext
            ),
            format!(
                "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
                self.state_cookie_name()
            ),
        ] {
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        response
    }
}

/// Seconds a sign-in may take, from the app's redirect to the hand-over.
const STATE_LIFETIME: i64 = 600;

/// Where to sign in, and the state cookie to set on the way (when the browser had none).
pub(crate) struct SignIn {
    pub url: String,
    pub set_cookie: Option<String>,
}

impl SignIn {
    pub(crate) fn redirect(&self) -> Response<Body> {
        let mut response = pages::redirect(&self.url);
        self.add_cookie(&mut response);
        response
    }

    pub(crate) fn add_cookie(&self, response: &mut Response<Body>) {
        if let Some(cookie) = &self.set_cookie
            && let Ok(cookie) = HeaderValue::from_str(cookie)
        {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
}

/// A value shaped like the 256-bit secrets Stackgate hands out (43 base64url characters), checked
/// before any database work is spent on it.
fn is_token_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host a request is for: from the URI (HTTP/2, absolute-form) or the `Host` header.
/// Returns the normalised name and the host as sent (with its port).
fn request_host<B>(request: &Request<B>) -> Option<(String, String)> {
    let sent = match request.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => request
            .headers()
            .get(header::HOST)?
            .to_str()
            .ok()?
            .to_owned(),
    };
    Some((normalise_host(&sent)?, sent))
}

/// Whether `host` is `domain` or a name under it (`wiki.example.org` in `example.org`, not
/// `badexample.org`). Both are normalised (lowercase, no trailing dot).
fn in_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
}

/// A path on this host, not a way out of it (`//evil`, `/\evil`).
pub(crate) fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control())
}

/// The value of cookie `name`, from every `Cookie` header.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Removes the cookies `names` before the request goes upstream: the app must never see the
/// edge's own credentials. Several `Cookie` headers (HTTP/2 sends one per cookie) become one, as
/// an HTTP/1.1 upstream expects; a header that is not text is dropped, since what it holds
/// cannot be checked. A request with neither, and none of these cookies, is left as it is.
pub(crate) fn remove_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let named = |pair: &str| {
        pair.trim()
            .split_once('=')
            .is_some_and(|(name, _)| names.contains(&name))
    };
    let mut values = 0;
    let mut rewrite = false;
    for value in headers.get_all(header::COOKIE) {
        values += 1;
        rewrite |= value
            .to_str()
            .map_or(true, |text| text.split(';').any(named));
    }
    if values <= 1 && !rewrite {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !named(pair))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_cookie_never_reaches_the_app() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; stackgate_proxy=secret"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("stackgate_proxy=again; b=2"),
        );
        assert_eq!(cookie_value(&headers, "stackgate_proxy"), Some("secret"));
        remove_cookies(&mut headers, &["stackgate_proxy"]);
        assert_eq!(headers.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut only = HeaderMap::new();
        only.insert(
            header::COOKIE,
            HeaderValue::from_static("stackgate_proxy=secret"),
        );
        remove_cookies(&mut only, &["stackgate_proxy"]);
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn cookies_reach_the_app_as_one_text_header_without_the_edge_ones() {
        let names = ["stackgate_proxy", "stackgate_state"];
        let mut untouched = HeaderMap::new();
        untouched.insert(header::COOKIE, HeaderValue::from_static("a=1;b=2"));
        remove_cookies(&mut untouched, &names);
        assert_eq!(untouched.get(header::COOKIE).unwrap(), "a=1;b=2");

        // HTTP/2 sends a header per cookie; an HTTP/1.1 upstream expects one.
        let mut split = HeaderMap::new();
        split.append(header::COOKIE, HeaderValue::from_static("a=1"));
        split.append(header::COOKIE, HeaderValue::from_static("b=2"));
        remove_cookies(&mut split, &names);
        assert_eq!(split.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(split.get(header::COOKIE).unwrap(), "a=1; b=2");

        // A value that is not text cannot be checked: it goes, even alone.
        let mut opaque = HeaderMap::new();
        opaque.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"stackgate_proxy=secret; x=\xff").unwrap(),
        );
        remove_cookies(&mut opaque, &names);
        assert!(opaque.get(header::COOKIE).is_none());

        let mut both = HeaderMap::new();
        both.insert(
            header::COOKIE,
            HeaderValue::from_static("stackgate_state=n; a=1; stackgate_proxy=s"),
        );
        remove_cookies(&mut both, &names);
        assert_eq!(both.get(header::COOKIE).unwrap(), "a=1");
    }

    #[test]
    fn a_parent_domain_covers_its_own_hosts_only() {
        assert!(in_domain("example.org", "example.org"));
        assert!(in_domain("wiki.example.org", "example.org"));
        assert!(in_domain("a.b.example.org", "example.org"));
        assert!(!in_domain("badexample.org", "example.org"));
        assert!(!in_domain(".example.org", "example.org"));
        assert!(!in_domain("example.org.evil", "example.org"));
        assert!(!in_domain("org", "example.org"));
    }

    #[test]
    fn return_paths_stay_on_the_host() {
        assert!(is_local_path("/wiki/page?x=1"));
        assert!(!is_local_path("//evil.example/"));
        assert!(!is_local_path("/\\evil.example/"));
        assert!(!is_local_path("https://evil.example/"));
        assert!(!is_local_path("/a\nb"));
    }
}
