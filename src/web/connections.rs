//! The HTTP connections of `ferry deploy serve`, up to the first request: each accepted
//! connection counts against a cap on all connections and one per client address, and is served
//! by hyper (HTTP/1.1) with a header-read timeout — which hyper also runs while a kept-alive
//! connection waits for its next request, so it is the idle timeout too. A connection over a cap
//! is answered `503` and closed at once. Request bodies have their own deadline
//! ([`body_deadline`](super::body_deadline)).
//!
//! Without these, a client sending one header byte every few seconds keeps a connection (a
//! socket and a task) for ever, and a few hundred of them exhaust the process's file
//! descriptors. A reverse proxy named with `--trusted-proxy` carries many clients over its
//! connections, so its connections count towards the total only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::Layer as _;
use tracing::{debug, error, warn};

use super::client_address::TrustedProxies;
use crate::auth::throttle::client_network;

/// How long clients may take, and how many connections they may hold (`deploy serve`'s flags
/// give the defaults: 1024 connections, 32 per client, 15 s for headers, 60 s for a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client by its /64); a trusted
    /// proxy's count towards `max_connections` only.
    pub max_connections_per_client: usize,
    /// How long a request's headers may take to arrive, and how long a kept-alive connection
    /// may wait for its next request.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive after its headers.
    pub body_timeout: Duration,
}

/// Which cap a connection would go over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CapReached {
    Total,
    Client,
}

impl CapReached {
    /// The whole answer to a refused connection.
    fn response(self) -> Vec<u8> {
        let text = match self {
            Self::Total => "too many connections to this service; try again shortly\n",
            Self::Client => "too many connections from your address; close some and try again\n",
        };
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Retry-After: 10\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .into_bytes()
    }
}

/// The connections open now: in all, and per client.
#[derive(Debug)]
struct ConnectionCaps {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<OpenConnections>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    client: Option<IpAddr>,
}

impl ConnectionCaps {
    fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            open: Mutex::new(OpenConnections::default()),
        })
    }

    /// A place for a connection from `client` (`None`: a trusted proxy, counted in the total
    /// only), or the cap it would go over.
    fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<ConnectionPermit, CapReached> {
        let mut open = self.open();
        if open.total >= self.max_total {
            return Err(CapReached::Total);
        }
        if let Some(client) = client {
            let count = open.per_client.entry(client).or_default();
            if *count >= self.max_per_client {
                return Err(CapReached::Client);
            }
            *count += 1;
        }
        open.total += 1;
        Ok(ConnectionPermit {
            caps: Arc::clone(self),
            client,
        })
    }

    fn open(&self) -> MutexGuard<'_, OpenConnections> {
        // Plain counters: whatever a panicking thread left is still usable.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.caps.open();
        open.total = open.total.saturating_sub(1);
        if let Some(client) = self.client
            && let Some(count) = open.per_client.get_mut(&client)
        {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&client);
            }
        }
    }
}

/// Refused connections being answered at once; beyond this many a refused one is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refused client gets to read its `503` before the socket is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Serves `app` on the connections `listener` accepts until `stop` completes, then lets the
/// requests in progress finish.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    trusted: &TrustedProxies,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let caps = ConnectionCaps::new(limits.max_connections, limits.max_connections_per_client);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut refused_since_warning = 0_u64;
    let mut last_warning: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    wait_after_accept_error(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let client = (!trusted.contains(peer.ip())).then(|| client_network(peer.ip()));
        let permit = match caps.admit(client) {
            Ok(permit) => permit,
            Err(cap) => {
                refused_since_warning += 1;
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    warn!(
                        peer = %peer.ip(),
                        cap = ?cap,
                        refused = refused_since_warning,
                        max_connections = limits.max_connections,
                        max_per_client = limits.max_connections_per_client,
                        "connection cap reached: refusing connections with 503"
                    );
                    last_warning = Some(Instant::now());
                    refused_since_warning = 0;
                }
                refuse(stream, cap, &refusals);
                continue;
            }
        };
        let service = TowerToHyperService::new(
            axum::Extension(ConnectInfo::<SocketAddr>(peer)).layer(app.clone()),
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection over a cap with `503` and closes it, without waiting on the client
/// longer than [`REFUSAL_LINGER`].
fn refuse(mut stream: TcpStream, cap: CapReached, refusals: &Arc<Semaphore>) {
    let Ok(slot) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        // A fresh socket's send buffer takes the few bytes at once; never wait for it.
        let _ = stream.try_write(&cap.response());
        let _ = stream.shutdown().await;
        // Read what the client sent until it closes, so the close is a FIN after the answer,
        // not a reset that could destroy it.
        let mut sink = [0_u8; 4096];
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        drop(slot);
    });
}

/// After a failed `accept`: a connection the client dropped is nothing; anything else (out of
/// file descriptors) is logged and waited out, as hyper and axum do.
async fn wait_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    error!(%error, "cannot accept a connection; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn each_client_has_its_own_cap_under_the_total() {
        let caps = ConnectionCaps::new(5, 2);
        let a1 = caps.admit(ip("192.0.2.1")).unwrap();
        let _a2 = caps.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(caps.admit(ip("192.0.2.1")).unwrap_err(), CapReached::Client);
        let _b = caps.admit(ip("192.0.2.2")).unwrap();
        // A trusted proxy counts in the total only.
        let _p1 = caps.admit(None).unwrap();
        let _p2 = caps.admit(None).unwrap();
        assert_eq!(caps.admit(None).unwrap_err(), CapReached::Total);
        assert_eq!(caps.admit(ip("192.0.2.3")).unwrap_err(), CapReached::Total);
        // A closed connection frees its place in both counts.
        drop(a1);
        let _a3 = caps.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(caps.admit(ip("192.0.2.4")).unwrap_err(), CapReached::Total);
    }

    #[test]
    fn clients_without_connections_are_forgotten() {
        let caps = ConnectionCaps::new(10, 1);
        for n in 0..5 {
            let permit = caps.admit(ip(&format!("192.0.2.{n}"))).unwrap();
            drop(permit);
        }
        let open = caps.open();
        assert_eq!(open.total, 0);
        assert!(open.per_client.is_empty());
    }

    #[test]
    fn the_refusals_are_whole_http_answers() {
        for cap in [CapReached::Total, CapReached::Client] {
            let response = cap.response();
            let text = std::str::from_utf8(&response).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(length, body.len(), "{body:?}");
        }
    }
}
