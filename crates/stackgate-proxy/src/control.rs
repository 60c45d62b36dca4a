//! What the admin API and the login pages ask of the edge.

use crate::{
    Edge,
    access::{AccessPolicy, SCHEMA, route_rules},
    routes::{Route, RouteTable, normalise_host},
};
use stackgate_store::NewRoute;
use stackgate_web::{EdgeControl, PolicyProblemView, RouteView};

impl Edge {
    /// A role header must be a header name the edge does not set for another purpose.
    fn check_role_header(&self, name: &str) -> Result<(), String> {
        let header = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("roles.header {name:?} is not a header name"))?;
        let names = &self.settings.headers;
        let taken = [&names.user, &names.email, &names.groups, &names.assertion];
        let reserved = [
            "host",
            "cookie",
            "authorization",
            "connection",
            "content-length",
            "transfer-encoding",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
        ];
        if taken.contains(&&header) || reserved.contains(&header.as_str()) {
            return Err(format!(
                "roles.header {name:?} is a header the edge sets for another purpose"
            ));
        }
        Ok(())
    }
}

impl EdgeControl for Edge {
    fn return_host(&self, url: &url::Url) -> Option<String> {
        if url.scheme() != self.scheme() || url.username() != "" || url.password().is_some() {
            return None;
        }
        let port = url.port_or_known_default()?;
        if !self.settings.public_ports.contains(&port) {
            return None;
        }
        let host = normalise_host(url.host_str()?)?;
        self.routes().has_host(&host).then_some(host)
    }

    fn routes(&self) -> Vec<RouteView> {
        let mut views: Vec<RouteView> = Edge::routes(self)
            .routes()
            .map(|r| RouteView {
                id: r.id.clone(),
                host: r.host.clone(),
                path_prefix: r.path_prefix.clone(),
                upstream: r.upstream.to_string(),
                app: r.app.clone(),
                groups: r.groups.clone(),
                public_paths: r.public_paths.clone(),
                role_header: r.roles.as_ref().map(|roles| roles.header.clone()),
                source: if r.id.is_some() { "runtime" } else { "config" },
            })
            .collect();
        views.sort_by(|a, b| (&a.host, &a.path_prefix).cmp(&(&b.host, &b.path_prefix)));
        views
    }

    fn check_route(&self, route: &NewRoute) -> Result<NewRoute, String> {
        let checked = Route::new(
            &route.host,
            &route.path_prefix,
            &route.upstream,
            &route.app,
            route.groups.clone(),
            route.public_paths.clone(),
        )
        .map_err(|e| e.to_string())?;
        if let Some(roles) = &route.roles {
            self.check_role_header(&roles.header)?;
            if roles.user.is_empty() || roles.admin.is_empty() || roles.user == roles.admin {
                return Err("roles: the user and admin values must be set and differ".into());
            }
        }
        if checked.host == self.issuer_host() {
            return Err(format!(
                "{} is the login host; it cannot be routed to an app",
                checked.host
            ));
        }
        // The table must still build with it: a clash found only at the next reload would
        // leave the edge unable to take in any later change.
        let current = Edge::routes(self);
        RouteTable::new(
            current
                .routes()
                .map(|r| (**r).clone())
                .chain([checked.clone()]),
        )
        .map_err(|e| e.to_string())?;
        Ok(NewRoute {
            host: checked.host,
            path_prefix: checked.path_prefix,
            upstream: checked.upstream.to_string(),
            app: checked.app,
            groups: checked.groups,
            public_paths: checked.public_paths,
            roles: route.roles.clone(),
        })
    }

    fn check_policy(&self, text: &str) -> Result<(), Vec<PolicyProblemView>> {
        let routes = Edge::routes(self);
        AccessPolicy::compile(&self.settings.default_policies, &routes, text)
            .map(|_| ())
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| PolicyProblemView {
                        source: p.source.to_owned(),
                        message: p.message,
                        line: p.line,
                        column: p.column,
                    })
                    .collect()
            })
    }

    fn builtin_policies(&self) -> (String, String) {
        let routes: std::sync::Arc<RouteTable> = Edge::routes(self);
        (self.settings.default_policies.clone(), route_rules(&routes))
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn forward_auth(
        &self,
        headers: hyper::HeaderMap,
    ) -> std::pin::Pin<Box<dyn Future<Output = axum::response::Response> + Send + '_>> {
        Box::pin(async move { crate::forward_auth::answer(self, &headers).await })
    }

    fn reload(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { Edge::reload(self).await.map_err(|e| e.to_string()) })
    }
}
