//! The accept loop: hyper's HTTP/1 server, because `axum::serve` has no header-read timeout
//! (a client that trickles its headers must not hold a connection forever) and no connection
//! limit, overall and per client address. Each request carries its peer address as `ConnectInfo`; on shutdown the listener
//! closes, idle connections close, and in-flight requests finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};
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

use crate::config::ForwardingTrust;
use crate::http::error::{ApiError, RETRY_AFTER_SECS};
use crate::metrics::Metrics;

/// How each connection is bounded.
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Open connections from one address (an IPv6 client: its /64); trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// The peers exempt from the per-address cap: they carry every client's connections.
    pub trust: ForwardingTrust,
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
    let per_peer = Arc::new(PeerConnections::default());
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
        // One address may not hold every slot: its own cap is checked first, so a flood from it
        // is refused before it takes a slot another client could have.
        let peer_slot = if limits.trust.trusts(peer.ip()) {
            None
        } else {
            match per_peer.try_open(peer.ip(), limits.max_connections_per_ip) {
                Some(peer_slot) => Some(peer_slot),
                None => {
                    metrics.connections_refused.with_label_values(&["per_ip"]).inc();
                    refuse_in_background(stream, &refusals);
                    continue;
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.with_label_values(&["listener"]).inc();
            refuse_in_background(stream, &refusals);
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
            drop(peer_slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a refused connection with [`refuse`], unless [`refuse`] is already running for as
/// many as `refusals` allows; then it is closed without a word.
fn refuse_in_background(stream: TcpStream, refusals: &Arc<Semaphore>) {
    if let Ok(refusing) = refusals.clone().try_acquire_owned() {
        tokio::spawn(async move {
            refuse(stream).await;
            drop(refusing);
        });
    }
}

/// Open connections by client address.
#[derive(Default)]
struct PeerConnections(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of an address; dropping it closes the count.
struct PeerSlot {
    peers: Arc<PeerConnections>,
    key: IpAddr,
}

impl PeerConnections {
    /// Counts a new connection from `peer`, unless it already has `max` open.
    fn try_open(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<PeerSlot> {
        let key = peer_key(peer);
        let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PeerSlot { peers: self.clone(), key })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// IPv4 addresses as they are; IPv6 by /64, the block one host or subscriber usually holds, so
/// a host cannot multiply its cap by using many addresses.
fn peer_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_cap_and_gets_slots_back_as_connections_close() {
        let peers = Arc::new(PeerConnections::default());
        let alice: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<PeerSlot> = (0..3).map(|_| peers.try_open(alice, 3).unwrap()).collect();
        assert!(peers.try_open(alice, 3).is_none());
        assert!(peers.try_open("192.0.2.2".parse().unwrap(), 3).is_some(), "others are unaffected");
        drop(held);
        assert!(peers.try_open(alice, 3).is_some());
        assert!(peers.0.lock().unwrap().len() <= 1, "closed addresses are forgotten");
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let peers = Arc::new(PeerConnections::default());
        let _held = peers.try_open("2001:db8:1:2::1".parse().unwrap(), 1).unwrap();
        assert!(peers.try_open("2001:db8:1:2:ffff::9".parse().unwrap(), 1).is_none());
        assert!(peers.try_open("2001:db8:1:3::1".parse().unwrap(), 1).is_some());
    }
}
