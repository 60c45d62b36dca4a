//! Forward-auth, for clusters that keep their own ingress: the ingress asks, before proxying,
//! whether a request may pass, and copies the identity headers from a yes.
//!
//! - nginx `auth_request` sends `X-Original-URL` (and `X-Original-Method`) and only understands
//!   2xx, 401 and 403: a missing session is a 401 whose `Location` names the sign-in page, for
//!   `auth_request_set` and `error_page 401` to redirect to.
//! - Traefik `forwardAuth` sends `X-Forwarded-Proto`, `-Host`, `-Uri` and `-Method`, and hands
//!   any non-2xx answer to the client as it is: a missing session is a 302 to sign in, and the
//!   sign-in callback is answered here in full (a redirect that sets the host's cookie).

use crate::{
    edge::{CALLBACK_PATH, Edge, Verdict},
    identity::add_identity,
    pages,
    paths::{BadPath, canonical_path},
    routes::normalise_host,
};
use axum::body::Body;
use hyper::{HeaderMap, Method, Response, StatusCode, header};

/// The request an ingress asks about.
pub struct Asked {
    /// `scheme://host[:port]`, as the ingress gave it.
    pub origin: String,
    /// Normalised (see [`normalise_host`]).
    pub host: String,
    /// Canonical (see [`crate::paths`]).
    pub path: String,
    pub query: Option<String>,
    pub method: Method,
    /// Traefik hands our answer to the browser; nginx needs a 401.
    pub browser_sees_answer: bool,
}

/// What the ingress asks about. Every part is required: a question without its method or path
/// would be answered for the wrong request.
pub fn asked(headers: &HeaderMap) -> Result<Asked, &'static str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (url, method, browser_sees_answer) = match text("x-original-url") {
        Some(original) => (
            original.to_owned(),
            text("x-original-method").ok_or("X-Original-Method is missing")?,
            false,
        ),
        None => {
            let proto = text("x-forwarded-proto").ok_or("X-Forwarded-Proto is missing")?;
            let host = text("x-forwarded-host").ok_or("X-Forwarded-Host is missing")?;
            let uri = text("x-forwarded-uri").ok_or("X-Forwarded-Uri is missing")?;
            let method = text("x-forwarded-method").ok_or("X-Forwarded-Method is missing")?;
            (format!("{proto}://{host}{uri}"), method, true)
        }
    };
    let (scheme, rest) = url.split_once("://").ok_or("the URL has no scheme")?;
    if scheme != "http" && scheme != "https" {
        return Err("the URL is not http or https");
    }
    let (authority, target) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return Err("the URL has no path"),
    };
    let target = target.split('#').next().unwrap_or(target);
    let (raw_path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    Ok(Asked {
        origin: format!("{scheme}://{authority}"),
        host: normalise_host(authority).ok_or("the URL has no valid host")?,
        path: canonical_path(raw_path).map_err(|BadPath(why)| why)?,
        query,
        method: Method::from_bytes(method.as_bytes()).map_err(|_| "the method is not valid")?,
        browser_sees_answer,
    })
}

pub(crate) async fn answer(edge: &Edge, headers: &HeaderMap) -> Response<Body> {
    let asked = match asked(headers) {
        Ok(asked) => asked,
        Err(why) => {
            return pages::status(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Forward-auth needs X-Original-URL and X-Original-Method (nginx), or X-Forwarded-Proto, -Host, -Uri and -Method (Traefik): {why}."
                ),
            );
        }
    };
    let routes = edge.routes();
    if asked.path == CALLBACK_PATH && asked.browser_sees_answer && routes.has_host(&asked.host) {
        return edge
            .callback(&asked.host, asked.query.as_deref().unwrap_or(""), headers)
            .await;
    }
    let Some(route) = routes.find(&asked.host, &asked.path).cloned() else {
        return pages::unknown_host(&asked.host);
    };
    let original_url = || match &asked.query {
        Some(query) => format!("{}{}?{query}", asked.origin, asked.path),
        None => format!("{}{}", asked.origin, asked.path),
    };
    match edge
        .check(
            &route,
            &asked.host,
            &asked.method,
            &asked.path,
            headers,
            &original_url,
        )
        .await
    {
        Verdict::Public => ok(),
        Verdict::Allowed(session) => {
            let mut response = ok();
            let told = edge.told(&session, &route.app);
            add_identity(response.headers_mut(), &edge.settings.headers, told);
            response
        }
        Verdict::SignIn(sign_in) => {
            if asked.browser_sees_answer {
                sign_in.redirect()
            } else {
                let mut response = pages::status(StatusCode::UNAUTHORIZED, "Sign in first.");
                if let Ok(location) = header::HeaderValue::from_str(&sign_in.url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                sign_in.add_cookie(&mut response);
                response
            }
        }
        Verdict::Denied => pages::forbidden(&route.app),
        Verdict::Unavailable => pages::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable for a moment.",
        ),
    }
}

fn ok() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
