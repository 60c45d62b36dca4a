//! Prometheus metrics: requests by route and status, latency, the database pool, and the edge's
//! connections.

use crate::state::AppState;
use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

/// One edge listener's connection counts: the listener updates them, a scrape reads them.
/// `Default` gives counts that no registry exports (for tests of the listener alone).
#[derive(Clone, Debug, Default)]
pub struct ListenerMetrics {
    open: Gauge,
    refused: Counter,
    released: Counter,
}

impl ListenerMetrics {
    pub fn opened(&self) {
        self.open.inc();
    }

    pub fn closed(&self) {
        self.open.dec();
    }

    /// A connection closed as soon as accepted, for want of a free slot.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// An idle connection gave its buffers back.
    pub fn released(&self) {
        self.released.inc();
    }
}

/// Requests the edge refused with 503 because every connection it may open to their app stayed
/// busy (`proxy_upstream_max_connections`). `Default` is exported by no registry.
#[derive(Clone, Debug, Default)]
pub struct UpstreamMetrics {
    busy: Counter,
}

impl UpstreamMetrics {
    pub fn busy(&self) {
        self.busy.inc();
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    watch_connected: Gauge,
    watch_connections: Gauge,
    session_lookups: Counter,
    edge_open: Family<ListenerLabels, Gauge>,
    edge_refused: Family<ListenerLabels, Counter>,
    edge_released: Family<ListenerLabels, Counter>,
    edge_upstream_busy: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stackgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 250 µs .. ~16 s
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.00025, 2.0, 17,
            ))
        });
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (in_use, idle, max)",
            pool.clone(),
        );
        let watch_connected = Gauge::default();
        let watch_connections = Gauge::default();
        registry.register(
            "session_watch_connected",
            "1 while the PostgreSQL channel announcing other replicas' sign-outs is proven alive",
            watch_connected.clone(),
        );
        registry.register(
            "session_watch_connections",
            "Times that channel was (re)established since start",
            watch_connections.clone(),
        );
        let session_lookups = Counter::default();
        registry.register(
            "session_database_lookups",
            "Session lookups the in-memory cache could not answer, so the database was asked (a read, or recording activity)",
            session_lookups.clone(),
        );
        let edge_open = Family::<ListenerLabels, Gauge>::default();
        let edge_refused = Family::<ListenerLabels, Counter>::default();
        let edge_released = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "edge_connections",
            "Connections open on an edge listener (edge, redirect)",
            edge_open.clone(),
        );
        registry.register(
            "edge_connections_refused",
            "Connections an edge listener closed as soon as accepted: proxy_max_connections were open",
            edge_refused.clone(),
        );
        registry.register(
            "edge_connections_released",
            "Times an idle HTTP/1 connection gave its buffers back while staying open",
            edge_released.clone(),
        );
        let edge_upstream_busy = Counter::default();
        registry.register(
            "edge_upstream_busy",
            "Requests the edge answered 503: every connection proxy_upstream_max_connections allows to their app stayed busy",
            edge_upstream_busy.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            pool,
            watch_connected,
            watch_connections,
            session_lookups,
            edge_open,
            edge_refused,
            edge_released,
            edge_upstream_busy,
        }
    }

    /// The edge's count of requests refused at an app's connection cap.
    pub fn upstream(&self) -> UpstreamMetrics {
        UpstreamMetrics {
            busy: self.edge_upstream_busy.clone(),
        }
    }

    /// The counts of the edge listener called `name`, exported under `listener="name"`.
    pub fn listener(&self, name: &'static str) -> ListenerMetrics {
        let labels = ListenerLabels { listener: name };
        ListenerMetrics {
            open: self.edge_open.get_or_create(&labels).clone(),
            refused: self.edge_refused.get_or_create(&labels).clone(),
            released: self.edge_released.get_or_create(&labels).clone(),
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition, with the store's gauges read at scrape time.
    pub fn render(
        &self,
        stats: stackgate_store::PoolStats,
        watch: stackgate_store::WatchStatus,
    ) -> String {
        self.watch_connected.set(i64::from(watch.connected));
        self.watch_connections
            .set(i64::try_from(watch.connections).unwrap_or(i64::MAX));
        // Counted by the store since start; a counter here only mirrors it.
        self.session_lookups
            .inner()
            .store(watch.database_lookups, std::sync::atomic::Ordering::Relaxed);
        let idle = i64::from(stats.idle);
        let size = i64::from(stats.size);
        for (state, value) in [
            ("in_use", size - idle),
            ("idle", idle),
            ("max", i64::from(stats.max)),
        ] {
            self.pool.get_or_create(&PoolLabels { state }).set(value);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The method as a label: a client may send any token as its method (`FOO`, a random string
/// per request), and each would become a series of its own, so only the standard ones are kept.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records each routed request under its route template (`/api/v1/users/{id}`), never the
/// concrete path, so label cardinality stays bounded.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method()).to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod method_label_tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "X1", "PROPFIND", "TRACE"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
