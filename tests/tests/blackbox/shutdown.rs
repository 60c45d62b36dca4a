//! Shutdown: a request already in flight when the server is told to stop still gets its answer,
//! and new connections are refused afterwards; on the edge, idle connections close at once.

use crate::proxy::{add_route, read_response};
use serde_json::json;
use stackgate_testkit::{Backend, EchoUpstream, TestServer};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_during_shutdown() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.bootstrap_admin().await;
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    let body = r#"{"username":"late","email":"late@example.org"}"#;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        admin.token,
        body.len()
    );
    // Send the headers and half the body: the request is now in flight.
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let store = server.store.clone();
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "no new connections once stopping"
    );
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the request in flight"
    );

    stream.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    stopping.await.unwrap();
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_finishes_answers_in_flight_and_closes_idle_connections() {
    edge_shutdown("0").await;
}

/// The same on threads of the edge's own, each a runtime of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_on_threads_of_its_own_finishes_answers_in_flight_and_closes_idle_connections() {
    edge_shutdown("2").await;
}

async fn edge_shutdown(threads: &str) {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
            ("STACKGATE_PROXY_THREADS", threads),
        ],
    )
    .await
    .unwrap();
    let admin = server.bootstrap_admin().await;
    // Counted only where asked for: the tests of this binary share its threads.
    let threads: usize = threads.parse().unwrap();
    if threads > 0 {
        until_edge_threads(threads).await;
    }
    let edge = ("127.0.0.1", server.proxy_addr.unwrap().port());
    // The login host's pages, through the edge (on the shared runtime, from threads of its own).
    let discovery = reqwest::get(format!(
        "http://{}:{}/.well-known/openid-configuration",
        edge.0, edge.1
    ))
    .await
    .unwrap();
    assert_eq!(discovery.status(), 200);
    let upstream = EchoUpstream::start().await;
    add_route(
        &server,
        &admin,
        json!({ "host": "slow.localhost", "upstream": upstream.url(), "app": "slow", "public_paths": ["/"] }),
    )
    .await;
    // A kept-alive connection, idle after its first answer.
    let mut idle = TcpStream::connect(edge).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: slow.localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut idle, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Idle long enough for the edge to free the connection's buffers: it still serves, and a
    // request sent in two parts is read whole.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        server
            .metric(r#"stackgate_edge_connections_released_total{listener="edge"}"#)
            .await,
        Some(1.0),
        "the idle connection gave its buffers back"
    );
    idle.write_all(b"GET /again HTTP/1.1\r\nhost: slow")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    idle.write_all(b".localhost\r\n\r\n").await.unwrap();
    let (head, body) = read_response(&mut idle, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("/again"), "{body}");
    // A request the app takes two seconds to answer.
    let mut busy = TcpStream::connect(edge).await.unwrap();
    busy.write_all(b"GET /slow/2 HTTP/1.1\r\nhost: slow.localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = tokio::spawn(server.stop());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "an idle connection is closed at once: {closed:?}"
    );
    assert!(
        TcpStream::connect(edge).await.is_err(),
        "no new connections once stopping"
    );
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the answer in flight"
    );
    let (head, body) = read_response(&mut busy, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "late");
    stopping.await.unwrap();
    if threads == 0 {
        return;
    }
    // Their runtimes ended with their connections, before the stop returned; the threads
    // themselves a moment later.
    until_edge_threads(0).await;
}

/// Waits (a second at most) for `count` threads of the edge's own: they start in the edge
/// listener's task, and end just after their runtimes.
async fn until_edge_threads(count: usize) {
    for _ in 0..50 {
        if edge_threads() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} edge threads running, not {count}", edge_threads());
}

/// Threads of this process named as the edge names its own. One test only asks for them.
fn edge_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("edge-"))
        .count()
}
