//! A minimal HTTP/1.1 responder for `GET /metrics`: one request per
//! connection, answered and closed. Prometheus needs nothing more, and a
//! full HTTP stack would be most of the daemon's dependencies.

use std::{net::SocketAddr, time::Duration};

use thiserror::Error;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tracing::{debug, warn};

use super::{Snapshot, render};

/// A scrape's question to the election task.
pub type SnapshotRequest = oneshot::Sender<Snapshot>;

/// Longest request head accepted; a scraper sends a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A client that does not finish its request in this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// What the OpenMetrics text encoder produces (Prometheus asks for it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error(
        "--metrics-listen {address}: cannot listen there: {source} (pick a free ADDR:PORT this host has)"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub async fn bind(address: SocketAddr) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| MetricsError::Bind { address, source })?;
        Ok(Self { listener })
    }

    /// Answers scrapes until the election task stops taking requests.
    pub async fn serve(self, requests: mpsc::Sender<SnapshotRequest>) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accepting a metrics connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if requests.is_closed() {
                return;
            }
            let requests = requests.clone();
            tokio::spawn(async move {
                if let Err(error) = answer(stream, &requests).await {
                    debug!(%error, %peer, "metrics request not answered");
                }
            });
        }
    }
}

/// What a request asks for, from its request line.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

fn route(head: &str) -> Route {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    // Prometheus may add query parameters; they change nothing here.
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

async fn answer(
    mut stream: TcpStream,
    requests: &mpsc::Sender<SnapshotRequest>,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let head_only = head.starts_with("HEAD ");
    let (status, body) = match route(&head) {
        Route::Metrics => {
            let (reply, answer) = oneshot::channel();
            let snapshot = match requests.send(reply).await {
                Ok(()) => answer.await.ok(),
                Err(_) => None,
            };
            match snapshot {
                Some(snapshot) => ("200 OK", render(&snapshot)),
                None => (
                    "503 Service Unavailable",
                    "the daemon is shutting down\n".into(),
                ),
            }
        }
        Route::NotFound => ("404 Not Found", "only /metrics is served here\n".into()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "use GET\n".into()),
        Route::BadRequest => ("400 Bad Request", "not an HTTP/1 request\n".into()),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head (a GET has no body).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head longer than 8 KiB",
            ));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route("HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route("hello\r\n\r\n"), Route::BadRequest);
    }

    #[tokio::test]
    async fn a_scrape_is_answered_from_a_snapshot() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        let address = server.listener.local_addr().unwrap();
        let (requests, mut incoming) = mpsc::channel::<SnapshotRequest>(4);
        tokio::spawn(server.serve(requests));
        tokio::spawn(async move {
            while let Some(reply) = incoming.recv().await {
                let mut snapshot = Snapshot::default();
                snapshot.interfaces.insert(
                    "eth1".into(),
                    [("accepted".to_owned(), 12)].into_iter().collect(),
                );
                let _ = reply.send(snapshot);
            }
        });
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains(CONTENT_TYPE), "{response}");
        assert!(
            response
                .contains("\nvrrp_agent_datapath_adverts_accepted_total{interface=\"eth1\"} 12\n"),
            "{response}"
        );
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{response}"
        );
    }
}
