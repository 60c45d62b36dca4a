//! Which upstream serves a request: host (and optional path prefix) → upstream, from the config
//! file and from the database (routes added at runtime by admins and app installs).

use crate::{
    ProxyError,
    paths::{BadPath, canonical_path},
};
use hyper::http::uri::{Authority, Scheme};
use std::{collections::HashMap, sync::Arc};

/// One route, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case host name, no port.
    pub host: String,
    /// Starts with `/`, in the canonical form requests are matched in; `/` matches everything.
    pub path_prefix: String,
    pub upstream: Upstream,
    /// The Cedar resource id: `App::"<app>"`.
    pub app: String,
    /// Groups that may reach the app (the default policy for it).
    pub groups: Vec<String>,
    /// Path prefixes reachable without signing in (health checks, `/.well-known/`), canonical.
    pub public_paths: Vec<String>,
    /// The stored route's id; `None` for routes from the config file.
    pub id: Option<String>,
    /// The role header the app reads, when it reads one.
    pub roles: Option<stackgate_store::RouteRoles>,
}

/// Where a route sends requests: `http://host:port` (TLS to upstreams is the cluster's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Upstream {
    pub fn parse(raw: &str) -> Result<Self, ProxyError> {
        let bad = |why: &str| ProxyError::Config(format!("upstream {raw:?}: {why}"));
        let uri: hyper::Uri = raw.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(bad("must start with http://"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("must not have a path or query"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        Ok(Upstream {
            scheme: Scheme::HTTP,
            authority,
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl Route {
    /// Checks and normalises a route's parts.
    pub fn new(
        host: &str,
        path_prefix: &str,
        upstream: &str,
        app: &str,
        groups: Vec<String>,
        public_paths: Vec<String>,
    ) -> Result<Self, ProxyError> {
        let host = normalise_host(host)
            .ok_or_else(|| ProxyError::Config(format!("host {host:?}: not a host name")))?;
        let path_prefix = if path_prefix.is_empty() {
            "/"
        } else {
            path_prefix
        };
        if !path_prefix.starts_with('/') || path_prefix.contains(['?', '#', ' ']) {
            return Err(ProxyError::Config(format!(
                "path_prefix {path_prefix:?}: must start with / and hold no query"
            )));
        }
        // Requests are matched in their canonical form, so prefixes must be written in it too:
        // `/café` would otherwise never match the `/caf%C3%A9` a browser sends.
        let path_prefix = canonical_path(path_prefix).map_err(|BadPath(why)| {
            ProxyError::Config(format!("path_prefix {path_prefix:?}: {why}"))
        })?;
        if app.is_empty()
            || !app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ProxyError::Config(format!(
                "app {app:?}: letters, digits, '-', '_' and '.' only"
            )));
        }
        let public_paths = public_paths
            .iter()
            .map(|path| {
                canonical_path(path).map_err(|BadPath(why)| {
                    ProxyError::Config(format!("public path {path:?}: {why}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route {
            host,
            path_prefix,
            upstream: Upstream::parse(upstream)?,
            app: app.to_owned(),
            groups,
            public_paths,
            id: None,
            roles: None,
        })
    }

    fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.path_prefix, path)
    }

    /// The role value for a member of `groups`: the admin value for Stackgate's admins and the
    /// app's admin groups, the user value for everyone else the policy let through.
    pub fn role_for(&self, username: &str, groups: &[String]) -> Option<(&str, &str)> {
        let roles = self.roles.as_ref()?;
        let admin = roles.admin_groups.contains(&format!("user:{username}"))
            || groups
                .iter()
                .any(|g| g == "admins" || roles.admin_groups.contains(g));
        Some((
            roles.header.as_str(),
            if admin { &roles.admin } else { &roles.user },
        ))
    }

    /// Whether `path` may be reached without signing in.
    pub fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| prefix_matches(p, path))
    }
}

/// `/app` matches `/app`, `/app/` and `/app/x`, not `/apple`; a prefix ending in `/` matches by
/// plain prefix.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `Example.ORG:443` → `example.org`. `None` for what is not a plain host name.
pub fn normalise_host(raw: &str) -> Option<String> {
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => raw,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    valid.then_some(host)
}

/// All routes, by host; the longest matching prefix wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Vec<Arc<Route>>>,
}

impl RouteTable {
    /// Builds the table; a host and prefix given twice is an error naming both.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Result<Self, ProxyError> {
        let mut by_host: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        for route in routes {
            let same_host = by_host.entry(route.host.clone()).or_default();
            if same_host.iter().any(|r| r.path_prefix == route.path_prefix) {
                return Err(ProxyError::Config(format!(
                    "two routes for {}{}",
                    route.host, route.path_prefix
                )));
            }
            same_host.push(Arc::new(route));
        }
        for routes in by_host.values_mut() {
            routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        }
        Ok(RouteTable { by_host })
    }

    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.by_host.get(host)?.iter().find(|r| r.matches(path))
    }

    pub fn has_host(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_host.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, prefix: &str, app: &str) -> Route {
        Route::new(
            host,
            prefix,
            "http://127.0.0.1:9",
            app,
            vec![],
            vec!["/health".into()],
        )
        .unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_prefixes_stop_at_segments() {
        let table = RouteTable::new([
            route("Wiki.Example.org", "/", "wiki"),
            route("wiki.example.org", "/api", "wiki-api"),
        ])
        .unwrap();
        assert_eq!(
            table.find("wiki.example.org", "/api/x").unwrap().app,
            "wiki-api"
        );
        assert_eq!(
            table.find("wiki.example.org", "/api").unwrap().app,
            "wiki-api"
        );
        assert_eq!(
            table.find("wiki.example.org", "/apiary").unwrap().app,
            "wiki"
        );
        assert!(table.find("other.example.org", "/").is_none());
    }

    /// Found in review of the fuzzing fix: requests are matched in canonical form, so a prefix
    /// or public path written with raw non-ASCII (or lower-case escapes) must be canonicalised
    /// too, or it never matches and the request falls through to a shorter prefix.
    #[test]
    fn prefixes_and_public_paths_are_matched_in_canonical_form() {
        let cafe = Route::new(
            "wiki.example.org",
            "/café",
            "http://127.0.0.1:9",
            "cafe",
            vec![],
            vec!["/café/menu".into(), "/%7euser".into()],
        )
        .unwrap();
        assert_eq!(cafe.path_prefix, "/caf%C3%A9");
        assert_eq!(cafe.public_paths, ["/caf%C3%A9/menu", "/~user"]);
        let table = RouteTable::new([route("wiki.example.org", "/", "wiki"), cafe]).unwrap();
        let request = crate::paths::canonical_path("/caf%c3%a9/x").unwrap();
        let found = table.find("wiki.example.org", &request).unwrap();
        assert_eq!(found.app, "cafe");
        assert!(found.is_public(&crate::paths::canonical_path("/café/menu").unwrap()));
        let dots = Route::new(
            "a.example",
            "/x/../admin",
            "http://127.0.0.1:9",
            "a",
            vec![],
            vec![],
        );
        assert!(dots.unwrap_err().to_string().contains(". or .. segment"));
    }

    #[test]
    fn duplicate_routes_are_refused() {
        let e = RouteTable::new([route("a.example", "/", "a"), route("A.example", "/", "b")])
            .unwrap_err();
        assert!(e.to_string().contains("two routes for a.example/"), "{e}");
    }

    #[test]
    fn hosts_are_normalised_and_checked() {
        assert_eq!(
            normalise_host("App.Example.ORG:8443").as_deref(),
            Some("app.example.org")
        );
        assert_eq!(
            normalise_host("app.example.org.").as_deref(),
            Some("app.example.org")
        );
        assert_eq!(normalise_host("evil.com/x"), None);
        assert_eq!(normalise_host(""), None);
    }

    #[test]
    fn upstreams_are_plain_http_origins() {
        assert!(Upstream::parse("http://10.0.0.1:8080").is_ok());
        assert!(Upstream::parse("https://10.0.0.1").is_err());
        assert!(Upstream::parse("http://10.0.0.1/path").is_err());
        assert!(Upstream::parse("not a url").is_err());
    }

    #[test]
    fn public_paths_match_by_segment() {
        let r = route("a.example", "/", "a");
        assert!(r.is_public("/health"));
        assert!(r.is_public("/health/live"));
        assert!(!r.is_public("/healthz"));
        assert!(!r.is_public("/"));
    }
}
