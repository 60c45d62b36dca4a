//! A stand-in app behind the edge proxy: it answers every request with what it received (method,
//! path, headers), counts streamed uploads without keeping them, and echoes WebSocket messages.

use axum::{
    Json, Router,
    body::Body,
    extract::{Request, ws::WebSocketUpgrade},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;

/// A running stand-in app.
#[derive(Debug)]
pub struct EchoUpstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoUpstream {
    pub async fn start() -> Self {
        let app =
            Router::new()
                .route("/ws", get(websocket))
                .route("/upload", post(upload))
                .route(
                    "/slow/{seconds}",
                    get(
                        |axum::extract::Path(seconds): axum::extract::Path<u64>| async move {
                            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
                            "late"
                        },
                    ),
                )
                .route(
                    "/set-cookie",
                    get(|| async {
                        (
                            [
                                (
                                    axum::http::header::SET_COOKIE,
                                    "stackgate_proxy=planted; Path=/",
                                ),
                                (axum::http::header::SET_COOKIE, "app=1; Path=/"),
                            ],
                            "cookies",
                        )
                    }),
                )
                .route(
                    "/hsts",
                    get(|| async {
                        (
                            [(
                                axum::http::header::STRICT_TRANSPORT_SECURITY,
                                "max-age=60; includeSubDomains",
                            )],
                            "an app with its own HSTS",
                        )
                    }),
                )
                .route("/download/{bytes}", get(download))
                // The address the request came from: the same for requests that came on one
                // connection; `/peer/MILLIS` answers after that long, to keep its connection
                // busy meanwhile.
                .route(
                    "/peer",
                    get(
                        |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                            SocketAddr,
                        >| async move { peer.to_string() },
                    ),
                )
                .route(
                    "/peer/{millis}",
                    get(
                        |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                            SocketAddr,
                        >,
                         axum::extract::Path(millis): axum::extract::Path<u64>| async move {
                            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
                            peer.to_string()
                        },
                    ),
                )
                .fallback(any(echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("upstream serves");
        });
        EchoUpstream { addr, task }
    }

    /// `http://127.0.0.1:PORT`, as a route's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn echo(request: Request) -> Json<Value> {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let value = Value::String(value.to_str().unwrap_or("(binary)").to_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.clone(), value]),
            None => {
                headers.insert(name.as_str().to_owned(), value);
            }
        }
    }
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    }))
}

/// Reads the body chunk by chunk and answers how many bytes arrived.
async fn upload(request: Request) -> Response {
    use http_body_util::BodyExt;
    let mut body: Body = request.into_body();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                }
            }
            Err(err) => {
                return (axum::http::StatusCode::BAD_REQUEST, err.to_string()).into_response();
            }
        }
    }
    Json(json!({ "bytes": total })).into_response()
}

/// Streams `bytes` zero bytes, 64 KiB at a time, without ever holding more.
async fn download(axum::extract::Path(bytes): axum::extract::Path<u64>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let chunk = axum::body::Bytes::from(vec![0u8; CHUNK]);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            if tx.send(Ok(chunk.slice(..n))).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    });
    let stream = futures_stream(rx);
    Response::builder()
        .header("content-length", bytes.to_string())
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

fn futures_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn websocket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    })
}
