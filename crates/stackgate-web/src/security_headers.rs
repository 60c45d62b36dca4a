//! Headers every response carries: no framing, no sniffing, no referrer (setup links carry a
//! secret in their query), and a script policy that allows only our own files.

use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::set_header::SetResponseHeaderLayer;

type Layer = Stack<
    SetResponseHeaderLayer<HeaderValue>,
    Stack<
        SetResponseHeaderLayer<HeaderValue>,
        Stack<
            SetResponseHeaderLayer<HeaderValue>,
            Stack<SetResponseHeaderLayer<HeaderValue>, Identity>,
        >,
    >,
>;

/// No `form-action`: Chrome and Safari apply it to the redirects after a form is submitted, and
/// the sign-in and consent forms end in a redirect to the app (already validated) — the
/// directive would block exactly the flow it is meant to protect.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn layer() -> ServiceBuilder<Layer> {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    ServiceBuilder::new()
        .layer(set(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null`
        // with our own form posts, which the CSRF check must then refuse. Other sites still
        // get no referrer (setup links carry a secret in the query).
        .layer(set(header::REFERRER_POLICY, "same-origin"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
}

/// HSTS, when Stackgate is reached over HTTPS: a browser that has seen it once never again
/// tries plain HTTP for these hosts, so a network attacker cannot strip TLS from a later visit.
/// Over plain HTTP (local development) browsers ignore the header, so none is sent.
pub(crate) fn hsts(
    https: bool,
) -> tower::util::Either<SetResponseHeaderLayer<HeaderValue>, Identity> {
    tower::util::option_layer(https.then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        )
    }))
}

/// A year. Not `includeSubDomains`: the issuer's host may be the organisation's own domain,
/// and other sites under it that still speak plain HTTP are not Stackgate's to break.
pub const HSTS: &str = "max-age=31536000";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    async fn headers_with(https: bool) -> axum::http::HeaderMap {
        let app = Router::new()
            .route("/", get(|| async { "page" }))
            .layer(layer())
            .layer(hsts(https));
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.headers().clone()
    }

    #[tokio::test]
    async fn hsts_is_sent_over_https_only() {
        let https = headers_with(true).await;
        assert_eq!(https[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        assert_eq!(https[header::X_FRAME_OPTIONS], "DENY");
        let http = headers_with(false).await;
        assert!(http.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert_eq!(http[header::X_FRAME_OPTIONS], "DENY");
    }
}
