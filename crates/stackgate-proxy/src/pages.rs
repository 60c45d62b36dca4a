//! The few pages the edge answers itself. Plain, self-contained HTML (no scripts, no outside
//! assets), so they work for any host.

use axum::body::Body;
use hyper::{Response, StatusCode, header};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with a title and one paragraph.
pub fn page(status: StatusCode, title: &str, message: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
         margin:4rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}}h1{{font-size:1.4rem}}</style>\
         </head><body><main><h1>{title}</h1><p>{message}</p></main></body></html>",
        title = escape(title),
        message = escape(message),
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

pub fn status(status: StatusCode, message: &str) -> Response<Body> {
    page(
        status,
        status.canonical_reason().unwrap_or("Error"),
        message,
    )
}

pub fn unknown_host(host: &str) -> Response<Body> {
    page(
        StatusCode::NOT_FOUND,
        "No app here",
        &format!(
            "Nothing is published at {host}. Check the address, or ask your administrator which address the app has."
        ),
    )
}

pub fn forbidden(app: &str) -> Response<Body> {
    page(
        StatusCode::FORBIDDEN,
        "You don't have access to this app",
        &format!(
            "Your account is signed in but may not use “{app}”. Ask your administrator to give one of your groups access to the app “{app}”."
        ),
    )
}

/// The store could not answer a session check or hand-over.
pub fn sign_in_unavailable() -> Response<Body> {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable for a moment. Try again shortly.",
    )
}

pub fn bad_gateway() -> Response<Body> {
    page(
        StatusCode::BAD_GATEWAY,
        "The app is not answering",
        "The app behind this address could not be reached. Try again in a minute; if it lasts, tell your administrator.",
    )
}

/// Every connection the edge may open to the app stayed busy while the request waited.
pub fn app_busy() -> Response<Body> {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The app is busy",
        "The app behind this address is answering as many requests as it can take. Try again in a moment; if it lasts, tell your administrator.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

pub fn gateway_timeout() -> Response<Body> {
    page(
        StatusCode::GATEWAY_TIMEOUT,
        "The app is taking too long",
        "The app behind this address did not answer in time. Try again; if it lasts, tell your administrator.",
    )
}

/// A redirect; `Cache-Control: no-store` because sign-in redirects depend on the session.
pub fn redirect(to: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = header::HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
