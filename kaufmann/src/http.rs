//! A small HTTP/1.1 server for `/metrics`, `/health/live` and `/health/ready` (off by default;
//! `metrics_addr` turns it on).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::engine::Stats;
use crate::metrics::Metrics;

/// Serves until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (metrics, stats) = (metrics.clone(), stats.clone());
                    tokio::spawn(async move {
                        if let Err(err) = answer(stream, &metrics, &stats).await {
                            tracing::debug!("metrics connection: {err}");
                        }
                    });
                }
                Err(err) => tracing::warn!("metrics endpoint: accept failed: {err}"),
            },
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, stats: &Stats) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0_u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (code, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render(stats)),
        ("GET", "/health/live") => ("200 OK", "text/plain", "live\n".to_owned()),
        ("GET", "/health/ready") if metrics.ready() => {
            ("200 OK", "text/plain", "ready\n".to_owned())
        }
        ("GET", "/health/ready") => (
            "503 Service Unavailable",
            "text/plain",
            "not ready: waiting for a partition assignment and the schema registry\n".to_owned(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /health/live or /health/ready\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
