//! Forward-auth for an ingress that keeps proxying itself: Debian's nginx with `auth_request`
//! in front of an app, Stackgate answering whether each request may pass and who it is; and the
//! Traefik `forwardAuth` dialect of the same question.

use crate::proxy::{PASSWORD, add_route, proxy_cookie, user};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stackgate_testkit::{EchoUpstream, TestServer, sign_in_and_authorize};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// A free port for nginx, named to Stackgate before it starts as a port people reach apps on
/// (`proxy_public_ports`), so that sign-ins are handed back through nginx.
fn nginx_port() -> &'static str {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Box::leak(port.to_string().into_boxed_str())
}

/// nginx on `port`: `notes.localhost` asks Stackgate (`web`) before proxying to `upstream`,
/// and hands `/.stackgate/` to Stackgate's edge (`edge`) for the sign-in hand-over.
async fn start_nginx(
    dir: &std::path::Path,
    port: u16,
    web: u16,
    edge: u16,
    upstream: &str,
) -> (Nginx, u16) {
    let prefix = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    server_name notes.localhost;

    # The sign-in hand-over sets this host's cookie: Stackgate's edge answers it.
    location /.stackgate/ {{
      proxy_pass http://127.0.0.1:{edge};
      proxy_set_header Host $http_host;
    }}

    location / {{
      auth_request /_stackgate_auth;
      auth_request_set $sg_user $upstream_http_x_forwarded_user;
      auth_request_set $sg_groups $upstream_http_x_forwarded_groups;
      auth_request_set $sg_assertion $upstream_http_x_stackgate_assertion;
      auth_request_set $sg_signin $upstream_http_location;
      auth_request_set $sg_state $upstream_http_set_cookie;
      error_page 401 = @stackgate_signin;
      proxy_set_header X-Forwarded-User $sg_user;
      proxy_set_header X-Forwarded-Groups $sg_groups;
      proxy_set_header X-Stackgate-Assertion $sg_assertion;
      proxy_pass {upstream};
    }}

    location = /_stackgate_auth {{
      internal;
      proxy_pass http://127.0.0.1:{web}/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}

    location @stackgate_signin {{
      add_header Set-Cookie $sg_state always;
      return 302 $sg_signin;
    }}
  }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let nginx = Nginx(
        Command::new(nginx_binary())
            .args(["-p", &dir.display().to_string(), "-c", "nginx.conf"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is installed (tests/run installs it)"),
    );
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (nginx, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start");
}

stackgate_testkit::on_both_backends_with! {
    &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"), ("STACKGATE_PROXY_PUBLIC_PORTS", nginx_port())];

    nginx_asks_before_every_request => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "notes.localhost", "upstream": upstream.url(), "app": "notes", "groups": ["staff"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        user(&server, &admin, "ivo", &["interns"]).await;
        let dir = tempfile::tempdir().unwrap();
        let web = reqwest::Url::parse(&server.base_url).unwrap().port().unwrap();
        let port = server.config.proxy.as_ref().unwrap().public_ports[0];
        let (_nginx, port) = start_nginx(dir.path(), port, web, server.proxy_addr.unwrap().port(), &upstream.url()).await;
        let page = format!("http://notes.localhost:{port}/page");

        // No session: nginx hears 401 and sends the person to sign in.
        let browser = server.edge_browser(&["notes.localhost"]);
        let first = browser.get(&page).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::FOUND);
        let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
        assert!(sign_in.starts_with(&server.url("/proxy/sign-in?rd=")), "{sign_in}");
        let callback = sign_in_and_authorize(&server, &browser, &sign_in, "ana", PASSWORD).await;
        assert_eq!(callback.port(), Some(port), "back through nginx: {callback}");
        let back = browser.get(callback).send().await.unwrap();
        assert_eq!(back.status(), StatusCode::FOUND);

        // Signed in: nginx lets the request through with the identity Stackgate gave it,
        // whatever the client claimed.
        let seen: Value = browser.get(&page).header("X-Forwarded-User", "root").send().await.unwrap().json().await.unwrap();
        assert_eq!(seen["headers"]["x-forwarded-user"], "ana", "{seen}");
        assert_eq!(seen["headers"]["x-forwarded-groups"], "staff");
        assert!(seen["headers"]["x-stackgate-assertion"].as_str().unwrap().split('.').count() == 3);

        // Not in the app's groups: 403.
        let ivo = server.edge_browser(&["notes.localhost"]);
        let first = ivo.get(&page).send().await.unwrap();
        let sign_in = first.headers()["location"].to_str().unwrap().to_owned();
        let callback = sign_in_and_authorize(&server, &ivo, &sign_in, "ivo", PASSWORD).await;
        ivo.get(callback).send().await.unwrap();
        let refused = ivo.get(&page).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        server.stop().await;
    };

    traefik_style_questions_get_full_answers => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let upstream = EchoUpstream::start().await;
        add_route(&server, &admin, json!({ "host": "notes.localhost", "upstream": upstream.url(), "app": "notes", "groups": ["staff"], "public_paths": ["/status"] })).await;
        user(&server, &admin, "ana", &["staff"]).await;
        let ask = |cookie: Option<String>, uri: &'static str| {
            let mut request = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(server.url("/forward-auth"))
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Host", "notes.localhost")
                .header("X-Forwarded-Uri", uri)
                .header("X-Forwarded-Method", "GET");
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            request.send()
        };
        let anonymous = ask(None, "/page").await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::FOUND, "Traefik passes a redirect to the browser");
        assert!(anonymous.headers()["location"].to_str().unwrap().contains("/proxy/sign-in?rd=http%3A%2F%2Fnotes.localhost%2Fpage"));
        assert_eq!(ask(None, "/status").await.unwrap().status(), StatusCode::OK);
        let cookie = proxy_cookie(&server, "notes.localhost", "ana").await;
        let allowed = ask(Some(cookie), "/page").await.unwrap();
        assert_eq!(allowed.status(), StatusCode::OK);
        assert_eq!(allowed.headers()["x-forwarded-user"], "ana");
        // A host Stackgate does not know is not vouched for.
        let unknown = reqwest::Client::new()
            .get(server.url("/forward-auth"))
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "other.localhost")
            .header("X-Forwarded-Uri", "/")
            .header("X-Forwarded-Method", "GET")
            .send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        // A question missing its method or path is not answered yes (it is not known which
        // request it is about), nor is one with a path the app could read otherwise.
        let vague = reqwest::Client::new()
            .get(server.url("/forward-auth"))
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "notes.localhost")
            .header("X-Forwarded-Uri", "/status")
            .send().await.unwrap();
        assert_eq!(vague.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ask(None, "/status/../page").await.unwrap().status(), StatusCode::BAD_REQUEST);
        server.stop().await;
    };
}
