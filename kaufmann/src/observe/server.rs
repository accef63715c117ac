//! A small HTTP/1.1 server for `/metrics`, `/health/live` and `/health/ready` (off by default;
//! `metrics_addr` turns it on). One request per connection; a client has [`READ_TIMEOUT`] to send
//! its request and [`WRITE_TIMEOUT`] to take the answer, and at most [`MAX_CONNECTIONS`] are open
//! at once (more are answered 503 and closed), so slow or idle clients cannot hold it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::observe::metrics::Metrics;

/// The time a client has to send its request line and headers.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The time a client has to read the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest request head read (request line and headers).
const MAX_REQUEST: usize = 16 * 1024;

/// Serves until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let metrics = metrics.clone();
                    let permit = open.clone().try_acquire_owned();
                    tokio::spawn(async move {
                        let served = match permit {
                            Ok(_permit) => answer(stream, &metrics).await,
                            Err(_) => busy(stream).await,
                        };
                        if let Err(err) = served {
                            tracing::debug!("metrics connection: {err}");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!("metrics endpoint: accept failed: {err}");
                    // (Out of file descriptors, say: no busy loop while it lasts.)
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// The answer when [`MAX_CONNECTIONS`] are open already.
async fn busy(stream: TcpStream) -> std::io::Result<()> {
    respond(
        stream,
        "503 Service Unavailable",
        "text/plain",
        "too many open connections\n",
    )
    .await
}

/// Reads the request head, within [`READ_TIMEOUT`] and [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0_u8; 1024];
    let reading = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    within(
        READ_TIMEOUT,
        "no complete request within the read timeout",
        reading,
    )
    .await?;
    Ok(request)
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let request = read_head(&mut stream).await?;
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (code, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        ("GET", "/health/live") => ("200 OK", "text/plain", "live\n".to_owned()),
        ("GET", "/health/ready") => match metrics.health.not_ready() {
            reasons if reasons.is_empty() => ("200 OK", "text/plain", "ready\n".to_owned()),
            reasons => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready:\n{reasons}"),
            ),
        },
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
    respond(stream, code, content_type, &body).await
}

/// Writes one answer and closes, within [`WRITE_TIMEOUT`].
async fn respond(
    mut stream: TcpStream,
    code: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let writing = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    within(
        WRITE_TIMEOUT,
        "the client did not take the answer within the write timeout",
        writing,
    )
    .await
}

/// `io` within `limit`, else a `TimedOut` error saying `what`.
async fn within(
    limit: Duration,
    what: &'static str,
    io: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, what))?
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(READ_TIMEOUT * 2, stream.read_to_string(&mut answer))
            .await
            .expect("an answer, then the close")
            .unwrap();
        answer
    }

    /// Half-sent requests are closed after the read timeout; past the connection bound, new
    /// connections are answered 503 at once; the server answers again once they are gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_cannot_hold_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::default(), shutdown));
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET /health/li").await.unwrap();
            held.push(stream);
        }
        // (The server takes the connections in order; give it the time to take them all.)
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut extra, b"GET /health/live HTTP/1.1\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 503") && answer.ends_with("too many open connections\n"),
            "{answer}"
        );
        for mut stream in held {
            let mut rest = Vec::new();
            let read = tokio::time::timeout(READ_TIMEOUT * 2, stream.read_to_end(&mut rest)).await;
            assert!(read.is_ok(), "a half-sent request is closed by the server");
        }
        assert!(started.elapsed() < READ_TIMEOUT * 2);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut stream, b"GET /health/live HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
}
