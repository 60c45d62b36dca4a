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
    routes::normalise_host,
};
use axum::body::Body;
use hyper::{HeaderMap, Method, Response, StatusCode, header};

struct Asked {
    url: url::Url,
    method: Method,
    /// Traefik hands our answer to the browser; nginx needs a 401.
    browser_sees_answer: bool,
}

fn asked(headers: &HeaderMap) -> Option<Asked> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(original) = text("x-original-url") {
        let method = text("x-original-method").unwrap_or("GET");
        return Some(Asked {
            url: url::Url::parse(original).ok()?,
            method: Method::from_bytes(method.as_bytes()).ok()?,
            browser_sees_answer: false,
        });
    }
    let proto = text("x-forwarded-proto").unwrap_or("https");
    let host = text("x-forwarded-host")?;
    let uri = text("x-forwarded-uri").unwrap_or("/");
    let method = text("x-forwarded-method").unwrap_or("GET");
    Some(Asked {
        url: url::Url::parse(&format!("{proto}://{host}{uri}")).ok()?,
        method: Method::from_bytes(method.as_bytes()).ok()?,
        browser_sees_answer: true,
    })
}

pub(crate) async fn answer(edge: &Edge, headers: &HeaderMap) -> Response<Body> {
    let Some(asked) = asked(headers) else {
        return pages::status(
            StatusCode::BAD_REQUEST,
            "Forward-auth needs X-Original-URL (nginx) or X-Forwarded-Host and X-Forwarded-Uri (Traefik).",
        );
    };
    let Some(host) = asked.url.host_str().and_then(normalise_host) else {
        return pages::status(StatusCode::BAD_REQUEST, "The forwarded URL has no host.");
    };
    let path = asked.url.path();
    let routes = edge.routes();
    let Some(route) = routes.find(&host, path).cloned() else {
        return pages::unknown_host(&host);
    };
    if path == CALLBACK_PATH && asked.browser_sees_answer {
        return edge.callback(&host, asked.url.query().unwrap_or("")).await;
    }
    match edge
        .check(
            &route,
            &host,
            &asked.method,
            path,
            headers,
            asked.url.as_str(),
        )
        .await
    {
        Verdict::Public => ok(),
        Verdict::Allowed(session) => {
            let mut response = ok();
            let assertion = edge.assertion(&session, &route.app);
            add_identity(
                response.headers_mut(),
                &edge.settings.headers,
                &session,
                assertion,
            );
            response
        }
        Verdict::SignIn(url) => {
            if asked.browser_sees_answer {
                pages::redirect(&url)
            } else {
                let mut response = pages::status(StatusCode::UNAUTHORIZED, "Sign in first.");
                if let Ok(location) = header::HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
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
