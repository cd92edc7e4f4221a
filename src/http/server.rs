//! The accept loop: hyper's HTTP/1 server, because `axum::serve` has no header-read timeout
//! (a client that trickles its headers must not hold a connection forever) and no connection
//! limit. Each request carries its peer address as `ConnectInfo`; on shutdown the listener
//! closes, idle connections close, and in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::error::{ApiError, RETRY_AFTER_SECS};
use crate::metrics::Metrics;

/// How each connection is bounded.
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals take a moment each (see `refuse`); beyond as many at once as there are slots (at
    // least 1024), a connection is closed without a word, so a flood cannot turn refusals into a
    // file-descriptor exhaustion.
    let refusals = Arc::new(Semaphore::new(limits.max_connections.max(1024)));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: back off rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let open = metrics.open_connections.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            open.dec();
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What a connection beyond `server.max_connections` gets, whatever it asked: written before
/// hyper has the connection, so as bytes, with the same problem document and headers as every
/// other 503.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let problem = ApiError::Unavailable("too many open connections: retry shortly").problem();
    let body = serde_json::to_string(&problem).expect("a problem document always serializes");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: {RETRY_AFTER_SECS}\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Reads the request head (clients treat an answer that comes before their request as an
/// error), answers 503 and closes, all within about 300 ms whatever the client does. What else
/// the client sends is read and dropped before closing, because closing a socket with unread
/// data resets it, and a reset can discard the 503 before the client reads it.
async fn refuse(mut stream: TcpStream) {
    let bounded = Duration::from_millis(100);
    let mut buffer = [0; 2048];
    let mut head = Vec::new();
    let _ = tokio::time::timeout(bounded, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buffer).await {
                Ok(n) if n > 0 => head.extend_from_slice(&buffer[..n]),
                _ => break,
            }
        }
    })
    .await;
    if tokio::time::timeout(bounded, stream.write_all(&REFUSAL)).await.is_ok() {
        let _ = stream.shutdown().await;
        let _ =
            tokio::time::timeout(bounded, async { while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {} })
                .await;
    }
}
