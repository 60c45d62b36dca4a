//! Shutdown: a request already in flight when the server is told to stop still gets its answer,
//! and new connections are refused afterwards.

use stackgate_testkit::{Backend, TestServer};
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
