//! Bodies stream through the edge both ways: a 1 GiB upload and a 1 GiB download through the
//! `stackgate` binary, whose peak memory must stay far below the body's size.

use reqwest::StatusCode;
use stackgate_testkit::{EchoUpstream, binary};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GIB: u64 = 1024 * 1024 * 1024;
/// The binary's peak resident memory must stay under this while 1 GiB passes each way.
const PEAK_LIMIT_KIB: u64 = 100 * 1024;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The edge's port, as `serve` prints it once it listens (on a port the system chose: a port
/// picked beforehand may be taken by another test by the time the binary binds it).
fn edge_port(child: &mut Child) -> u16 {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the binary never writes to a closed pipe.
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints the edge's address within 30 s");
        if let Some(address) = line.strip_prefix("The edge proxy is listening on ") {
            return address
                .trim()
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .port();
        }
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_each_way_in_bounded_memory() {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stackgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[proxy_route]]\nhost = \"files.localhost\"\nupstream = \"{}\"\napp = \"files\"\npublic_paths = [\"/upload\", \"/download\"]\n",
            upstream.url()
        ),
    )
    .unwrap();
    let child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .env("STACKGATE_DATA_DIR", dir.path().join("data"))
        .env("STACKGATE_LISTEN", "127.0.0.1:0")
        .env("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")
        .env("STACKGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut process = Process(child);
    let pid = process.0.id();
    let edge = edge_port(&mut process.0);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", edge))
        .await
        .unwrap();
    let (baseline, _) = memory_kib(pid);

    // Upload: written as fast as the socket takes it, never buffered by the edge.
    let began = Instant::now();
    stream
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nhost: files.localhost\r\ncontent-length: {GIB}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let chunk = vec![7u8; 256 * 1024];
    let mut sent = 0;
    while sent < GIB {
        stream.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let upload = began.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&format!("{{\"bytes\":{GIB}}}")), "{answer}");

    // Download: read chunk by chunk.
    let began = Instant::now();
    let client = reqwest::Client::builder()
        .resolve(
            "files.localhost",
            format!("127.0.0.1:{edge}").parse().unwrap(),
        )
        .build()
        .unwrap();
    let mut response = client
        .get(format!("http://files.localhost:{edge}/download/{GIB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
    }
    assert_eq!(received, GIB);
    let download = began.elapsed();

    let (peak, rss) = memory_kib(pid);
    eprintln!(
        "1 GiB through the edge: upload {upload:.1?} ({:.0} MiB/s), download {download:.1?} ({:.0} MiB/s); \
         edge peak RSS {} MiB (at start {} MiB, now {} MiB)",
        1024.0 / upload.as_secs_f64(),
        1024.0 / download.as_secs_f64(),
        peak / 1024,
        baseline / 1024,
        rss / 1024
    );
    assert!(
        peak < PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB: the body was buffered"
    );
}
