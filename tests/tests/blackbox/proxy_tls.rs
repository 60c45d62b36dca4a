//! The edge over HTTPS: certificates chosen by SNI, HTTP/2 through ALPN, certificates reloaded
//! from disk without dropping live connections, and plain HTTP redirected to HTTPS.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use reqwest::{Client, StatusCode, Version};
use stackgate_testkit::{Backend, EchoUpstream, TestServer};
use std::{path::Path, time::Duration};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Writes `NAME.crt` and `NAME.key` for `hosts`; returns the certificate's DER.
    fn issue(&self, dir: &Path, name: &str, hosts: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let cert = CertificateParams::new(hosts)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        // Key first, then certificate: the reload must not pick up a half-written pair for good.
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        cert.der().to_vec()
    }

    fn client(&self, server: &TestServer, hosts: &[&str]) -> Client {
        let addr = server.proxy_addr.unwrap();
        let mut builder = Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).unwrap()])
            .tls_info(true)
            .redirect(reqwest::redirect::Policy::none());
        for host in hosts {
            builder = builder.resolve(host, addr);
        }
        builder.build().unwrap()
    }
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_sni_http2_reload_and_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let a = ca.issue(dir.path(), "a", &["a.localhost"]);
    let b = ca.issue(dir.path(), "b", &["*.b.localhost"]);
    let redirect_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let tls_dir = dir.path().display().to_string();
    let redirect = format!("127.0.0.1:{redirect_port}");
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
            ("STACKGATE_PROXY_TLS_DIR", &tls_dir),
            ("STACKGATE_PROXY_REDIRECT_LISTEN", &redirect),
        ],
    )
    .await
    .unwrap();
    let port = server.proxy_addr.unwrap().port();
    let client = ca.client(&server, &["a.localhost", "x.b.localhost"]);

    // Each host gets its own certificate (a wildcard for the second), over HTTP/2.
    let on_a = client
        .get(format!("https://a.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.version(), Version::HTTP_2);
    assert_eq!(peer_certificate(&on_a), a);
    assert_eq!(
        on_a.status(),
        StatusCode::NOT_FOUND,
        "no route yet: a clear page"
    );
    assert_eq!(
        on_a.headers()["strict-transport-security"],
        "max-age=31536000",
        "the edge's own pages on app hosts carry HSTS"
    );
    let on_b = client
        .get(format!("https://x.b.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&on_b), b);

    // Plain HTTP/1.1 works too (ALPN offers both).
    let http1 = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.issuer.pem().as_bytes()).unwrap()])
        .http1_only()
        .resolve("a.localhost", server.proxy_addr.unwrap())
        .build()
        .unwrap();
    let old = http1
        .get(format!("https://a.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.version(), Version::HTTP_11);

    // A new certificate for a.localhost is picked up without a restart; new connections see
    // it, and a connection opened before goes on working.
    let renewed = ca.issue(dir.path(), "a", &["a.localhost"]);
    assert_ne!(renewed, a);
    let fresh = || ca.client(&server, &["a.localhost"]);
    let mut seen = Vec::new();
    for _ in 0..50 {
        let response = fresh()
            .get(format!("https://a.localhost:{port}/"))
            .send()
            .await
            .unwrap();
        seen = peer_certificate(&response);
        if seen == renewed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, renewed,
        "the renewed certificate is served within 5 s"
    );
    let on_old = client
        .get(format!("https://a.localhost:{port}/again"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        peer_certificate(&on_old),
        a,
        "the live HTTP/2 connection was not dropped"
    );
    assert_eq!(on_old.status(), StatusCode::NOT_FOUND);

    // A broken pair on disk keeps the working certificates in force.
    std::fs::write(dir.path().join("a.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = fresh()
        .get(format!("https://a.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&still), renewed);

    // Plain HTTP is sent to HTTPS, same host and path.
    let plain = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = plain
        .get(format!("http://127.0.0.1:{redirect_port}/some/path?q=1"))
        .header("host", "a.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert!(
        moved.headers().get("strict-transport-security").is_none(),
        "browsers ignore HSTS over plain HTTP"
    );
    assert_eq!(
        moved.headers()["location"],
        format!("https://a.localhost:{port}/some/path?q=1")
    );

    // A proxied app's answers carry HSTS too, unless the app sent its own.
    let admin = server.bootstrap_admin().await;
    let upstream = EchoUpstream::start().await;
    for (host, app) in [("app.b.localhost", "app"), ("own.b.localhost", "own")] {
        crate::proxy::add_route(
            &server,
            &admin,
            serde_json::json!({ "host": host, "upstream": upstream.url(), "app": app, "public_paths": ["/"] }),
        )
        .await;
    }
    let client = ca.client(&server, &["app.b.localhost", "own.b.localhost"]);
    let proxied = client
        .get(format!("https://app.b.localhost:{port}/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    assert_eq!(
        proxied.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let own = client
        .get(format!("https://own.b.localhost:{port}/hsts"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.headers()["strict-transport-security"],
        "max-age=60; includeSubDomains",
        "an app's own HSTS is left as it sent it"
    );
    server.stop().await;
}
