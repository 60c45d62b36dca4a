//! The edge proxy's settings: `proxy_*` keys, plus `[[proxy_route]]` tables in the config file
//! (the one setting with no environment twin: a list of tables does not fit in a variable).

use crate::config::{ConfigError, Values, err};
use stackgate_proxy::{IdentityHeaders, Route};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Keys, with their documentation (joined into [`crate::config::KEYS`]).
pub const KEYS: &[(&str, &str)] = &[
    (
        "proxy_listen",
        "address and port of the edge proxy; unset, there is no proxy (default unset)",
    ),
    (
        "proxy_tls_dir",
        "folder of NAME.crt + NAME.key PEM pairs; set, the proxy serves HTTPS and reloads them on change (default unset: plain HTTP)",
    ),
    (
        "proxy_redirect_listen",
        "address and port answering plain HTTP with a redirect to HTTPS (default unset)",
    ),
    (
        "proxy_public_ports",
        "other ports people reach app hosts on, comma-separated (an ingress using forward-auth on a port other than 80/443); sign-ins are handed over to no other port (default none)",
    ),
    (
        "proxy_cookie_domain",
        "parent-domain cookie mode: one edge cookie for this domain and every host under it, so one hand-over signs a browser in to every app there; every host under it then receives that cookie (default unset: a cookie per app host)",
    ),
    (
        "proxy_policies_file",
        "a Cedar file replacing the default access policies in policies/default.cedar (default unset)",
    ),
    (
        "proxy_header_user",
        "header carrying the username to apps (default X-Forwarded-User)",
    ),
    (
        "proxy_header_email",
        "header carrying the email to apps (default X-Forwarded-Email)",
    ),
    (
        "proxy_header_groups",
        "header carrying the groups, comma-separated (default X-Forwarded-Groups)",
    ),
    (
        "proxy_assertion_header",
        "header carrying the signed identity assertion (default X-Stackgate-Assertion)",
    ),
    (
        "proxy_upstream_connect_timeout",
        "seconds to connect to an app, 1-300 (default 5)",
    ),
    (
        "proxy_upstream_response_timeout",
        "seconds an app has to start answering, 1-3600 (default 60)",
    ),
    (
        "proxy_upstream_max_connections",
        "most connections open at once to one upstream address; past that, requests wait for one given back, and get 503 after the connect timeout, 1-100000 (default 1024)",
    ),
    (
        "proxy_header_read_timeout",
        "seconds a client has to send a request's headers, 1-300 (default 30)",
    ),
    (
        "proxy_body_idle_timeout",
        "seconds a client may pause while sending a request body before the request ends with 408, or while taking an answer before its connection is closed, 1-3600 (default 60)",
    ),
    (
        "proxy_max_connections",
        "most client connections open at once; more are closed as soon as accepted, 16-1000000 (default 20000)",
    ),
    (
        "proxy_threads",
        "threads of the edge's own, each a single-threaded runtime; 0 serves the edge on the shared runtime, 0-256 (default 0)",
    ),
    (
        "proxy_max_header_bytes",
        "largest request head accepted, 8192-1048576 bytes (default 65536)",
    ),
    (
        "proxy_max_headers",
        "most request headers accepted, 16-1000 (default 100)",
    ),
    (
        "proxy_route",
        "file only: [[proxy_route]] tables with host, upstream, app, and optional path_prefix, groups, public_paths",
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub tls_dir: Option<PathBuf>,
    pub redirect_listen: Option<SocketAddr>,
    /// Ports beside the scheme's default, the issuer's and `listen`'s.
    pub public_ports: Vec<u16>,
    /// Parent-domain cookie mode's domain (lowercase, no trailing dot).
    pub cookie_domain: Option<String>,
    /// The text replacing the default policies.
    pub policies: Option<String>,
    pub headers: HeaderNames,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub upstream_max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    /// The edge's own threads (0: the shared runtime's).
    pub threads: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    pub user: String,
    pub email: String,
    pub groups: String,
    pub assertion: String,
}

impl HeaderNames {
    pub fn to_identity_headers(&self) -> Result<IdentityHeaders, String> {
        let name = |n: &str| {
            hyper::header::HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("{n:?} is not a header name"))
        };
        Ok(IdentityHeaders {
            user: name(&self.user)?,
            email: name(&self.email)?,
            groups: name(&self.groups)?,
            assertion: name(&self.assertion)?,
        })
    }
}

fn address(v: &Values, key: &str) -> Result<Option<SocketAddr>, ConfigError> {
    v.text(key)?
        .map(|s| {
            s.trim().parse().map_err(|_| {
                err(
                    key,
                    format!("expected an address and port such as 0.0.0.0:443, found {s:?}"),
                )
            })
        })
        .transpose()
}

fn seconds(v: &Values, key: &str, max: i64, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        v.int(key, 1, max)?.map_or(default, i64::unsigned_abs),
    ))
}

impl ProxyConfig {
    pub(crate) fn from_values(v: &Values) -> Result<Option<Self>, ConfigError> {
        let Some(listen) = address(v, "proxy_listen")? else {
            for (key, _) in KEYS {
                if v.has(key) {
                    return Err(err(key, "has no effect without proxy_listen"));
                }
            }
            return Ok(None);
        };
        let tls_dir = v.text("proxy_tls_dir")?.map(PathBuf::from);
        if let Some(dir) = &tls_dir
            && !dir.is_dir()
        {
            return Err(err(
                "proxy_tls_dir",
                format!("{} is not a folder", dir.display()),
            ));
        }
        let redirect_listen = address(v, "proxy_redirect_listen")?;
        if redirect_listen.is_some() && tls_dir.is_none() {
            return Err(err(
                "proxy_redirect_listen",
                "redirects to HTTPS, so it needs proxy_tls_dir",
            ));
        }
        let public_ports = v
            .text("proxy_public_ports")?
            .map(|list| {
                list.split(',')
                    .map(|p| {
                        p.trim()
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| {
                                err(
                                    "proxy_public_ports",
                                    format!("expected port numbers such as 8443,9443, found {p:?}"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let cookie_domain = v
            .text("proxy_cookie_domain")?
            .map(|d| cookie_domain(&d))
            .transpose()?;
        let policies = match v.text("proxy_policies_file")? {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| err("proxy_policies_file", format!("cannot read {path}: {e}")))?,
            ),
            None => None,
        };
        let header = |key: &str, default: &str| -> Result<String, ConfigError> {
            let name = v.text(key)?.unwrap_or_else(|| default.to_owned());
            hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(key, format!("{name:?} is not a header name")))?;
            Ok(name)
        };
        let headers = HeaderNames {
            user: header("proxy_header_user", "X-Forwarded-User")?,
            email: header("proxy_header_email", "X-Forwarded-Email")?,
            groups: header("proxy_header_groups", "X-Forwarded-Groups")?,
            assertion: header("proxy_assertion_header", "X-Stackgate-Assertion")?,
        };
        Ok(Some(ProxyConfig {
            listen,
            tls_dir,
            redirect_listen,
            public_ports,
            cookie_domain,
            policies,
            headers,
            upstream_connect_timeout: seconds(v, "proxy_upstream_connect_timeout", 300, 5)?,
            upstream_response_timeout: seconds(v, "proxy_upstream_response_timeout", 3600, 60)?,
            upstream_max_connections: v
                .int("proxy_upstream_max_connections", 1, 100_000)?
                .map_or(1024, |n| n.unsigned_abs() as usize),
            header_read_timeout: seconds(v, "proxy_header_read_timeout", 300, 30)?,
            body_idle_timeout: seconds(v, "proxy_body_idle_timeout", 3600, 60)?,
            max_connections: v
                .int("proxy_max_connections", 16, 1_000_000)?
                .map_or(20_000, |n| n.unsigned_abs() as usize),
            threads: v
                .int("proxy_threads", 0, 256)?
                .map_or(0, |n| n.unsigned_abs() as usize),
            max_header_bytes: v
                .int("proxy_max_header_bytes", 8192, 1_048_576)?
                .map_or(65_536, |n| n.unsigned_abs() as usize),
            max_headers: v
                .int("proxy_max_headers", 16, 1000)?
                .map_or(100, |n| n.unsigned_abs() as usize),
            routes: routes(v)?,
        }))
    }
}

/// A domain a cookie can name: a DNS name of two labels or more (browsers refuse a cookie for a
/// top-level domain), not an address (an address cookie covers no other host).
fn cookie_domain(text: &str) -> Result<String, ConfigError> {
    let domain = text.trim().trim_start_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        err(
            "proxy_cookie_domain",
            format!("{text:?} {why}; expected a domain such as apps.example.org"),
        )
    };
    match url::Host::parse(&domain) {
        Ok(url::Host::Domain(d)) if d == domain => {}
        Ok(url::Host::Domain(_)) | Err(_) => return Err(bad("is not a domain name")),
        Ok(_) => {
            return Err(bad(
                "is an address, which a cookie cannot share with other hosts",
            ));
        }
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err(bad("is not a domain of two labels or more"));
    }
    if !domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad("is not a domain name"));
    }
    Ok(domain)
}

fn routes(v: &Values) -> Result<Vec<Route>, ConfigError> {
    let Some(tables) = v.file_array("proxy_route")? else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let key = format!("proxy_route[{i}]");
        let table = table
            .as_table()
            .ok_or_else(|| err(&key, "expected a table ([[proxy_route]])"))?;
        let text = |field: &str| -> Result<Option<String>, ConfigError> {
            match table.get(field) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(err(&format!("{key}.{field}"), "expected a string")),
            }
        };
        let list = |field: &str| -> Result<Vec<String>, ConfigError> {
            match table.get(field) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            err(&format!("{key}.{field}"), "expected a list of strings")
                        })
                    })
                    .collect(),
                Some(_) => Err(err(&format!("{key}.{field}"), "expected a list of strings")),
            }
        };
        for field in table.keys() {
            if ![
                "host",
                "path_prefix",
                "upstream",
                "app",
                "groups",
                "public_paths",
            ]
            .contains(&field.as_str())
            {
                return Err(err(
                    &format!("{key}.{field}"),
                    "unknown field; expected host, path_prefix, upstream, app, groups or public_paths",
                ));
            }
        }
        let required = |field: &str| -> Result<String, ConfigError> {
            text(field)?.ok_or_else(|| err(&format!("{key}.{field}"), "is required"))
        };
        let groups = list("groups")?;
        for group in &groups {
            if stackgate_identity::group_name(group).ok().as_deref() != Some(group.as_str()) {
                return Err(err(
                    &format!("{key}.groups"),
                    format!("{group:?} is not a group name"),
                ));
            }
        }
        let route = Route::new(
            &required("host")?,
            &text("path_prefix")?.unwrap_or_else(|| "/".into()),
            &required("upstream")?,
            &required("app")?,
            groups,
            list("public_paths")?,
        )
        .map_err(|e| err(&key, e.to_string()))?;
        routes.push(route);
    }
    stackgate_proxy::RouteTable::new(routes.clone())
        .map_err(|e| err("proxy_route", e.to_string()))?;
    Ok(routes)
}
