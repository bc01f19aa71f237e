//! The FTP server: the only code that awaits the network on the server side.
//!
//! [`run`] takes a bound listener (tests bind port 0) and a shutdown token, accepts control
//! connections and runs one [`session`] task per connection. A session owns all of its state; a
//! transfer gets what it needs and reports back, and ABOR cancels it. Nothing here parses bytes
//! (that is [`crate::protocol`]) or touches files (that is [`crate::storage`]).

pub mod admin;
mod commands;
mod control;
mod data;
pub mod events;
mod http;
mod limits;
pub mod masquerade;
pub mod metrics;
pub mod pace;
pub mod passive;
pub mod proxy;
mod resumption;
mod session;
pub mod tls;
mod transfer;
mod unsettled;
pub mod virtual_hosts;
pub mod xferlog;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::auth::Authenticator;
use crate::auth::throttle::{LoginThrottle, ThrottleConfig};
use crate::storage::StorageProvider;

pub use http::serve_http;
pub use limits::ConnectionLimits;
use limits::{ConnectionSlot, LimitExceeded};
pub use masquerade::Masquerade;
pub use metrics::ServerMetrics;
pub use passive::{PassivePortPool, PortRanges};
use session::ListenerKind;
pub use session::Shutdown;
pub use tls::{TlsContext, TlsSettings};

/// Everything a running server needs to know, validated before it starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The greeting after `220`.
    pub banner: String,
    pub passive_ports: PortRanges,
    pub masquerade: Masquerade,
    /// Whether PORT and EPRT are served at all (always only to the client's own address).
    pub active_mode: bool,
    pub timeouts: Timeouts,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub login_throttle: ThrottleConfig,
    /// Home of the `anonymous`/`ftp` user (read-only); `None` turns anonymous logins off.
    pub anonymous_home: Option<String>,
    /// How long running transfers may go on after a shutdown request.
    pub shutdown_grace: Duration,
    /// FTPS: certificate and policies; `None` serves plain FTP only.
    pub tls: Option<Arc<TlsContext>>,
    /// Load-balancer networks whose connections must open with a PROXY protocol header naming the
    /// real client; empty turns the PROXY protocol off.
    pub proxy_protocol_from: Vec<IpNet>,
    /// The wu-ftpd style transfer log, when one is kept (`--xferlog`).
    pub xferlog: Option<Arc<xferlog::XferLog>>,
    /// The sites clients can choose with HOST (RFC 7151); empty: HOST is not offered.
    pub virtual_hosts: virtual_hosts::VirtualHosts,
    /// The operator's event hooks (`[[events]]` in ferry.toml), when there are any.
    pub events: Option<Arc<events::EventHooks>>,
    /// The pace of each upload and of each download, when limited.
    pub upload_rate: Option<pace::RateLimit>,
    pub download_rate: Option<pace::RateLimit>,
}

/// Timeouts of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A control connection with no command for this long is closed (never during a transfer).
    pub idle: Duration,
    /// How long a PASV/EPSV port waits for the client, and an active connect may take.
    pub data_accept: Duration,
    /// A transfer that moves no byte for this long is aborted.
    pub data_stall: Duration,
    /// Time allowed from connect to a successful login.
    pub login: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(300),
            data_accept: Duration::from_secs(30),
            data_stall: Duration::from_secs(120),
            login: Duration::from_secs(60),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            banner: "ferry FTP server ready.".to_owned(),
            passive_ports: PortRanges::any(),
            masquerade: Masquerade::default(),
            active_mode: true,
            timeouts: Timeouts::default(),
            max_connections: 1000,
            max_connections_per_ip: 50,
            login_throttle: ThrottleConfig::default(),
            anonymous_home: None,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
            proxy_protocol_from: Vec::new(),
            xferlog: None,
            events: None,
            upload_rate: None,
            download_rate: None,
            virtual_hosts: virtual_hosts::VirtualHosts::default(),
        }
    }
}

/// The state shared by every session of one server.
#[derive(Debug)]
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// The server's storage: for every account that names no storage of its own.
    pub(crate) storage: Arc<dyn StorageProvider>,
    /// Named storages that accounts and groups pick (`[storage.NAME]` in ferry.toml).
    pub(crate) named_storage: BTreeMap<String, Arc<dyn StorageProvider>>,
    pub(crate) passive_pool: PassivePortPool,
    pub(crate) limits: ConnectionLimits,
    pub(crate) throttle: LoginThrottle,
    pub(crate) metrics: Arc<ServerMetrics>,
    /// How many HASH computations may run at once; one more is answered 450.
    pub(crate) hash_slots: Arc<tokio::sync::Semaphore>,
    /// Replacing uploads answered `226` and not visible yet, which the account's other sessions
    /// wait for.
    pub(crate) unsettled: Arc<unsettled::UnsettledUploads>,
    next_session_id: AtomicU64,
}

impl Server {
    pub fn new(
        config: ServerConfig,
        authenticator: Arc<dyn Authenticator>,
        storage: Arc<dyn StorageProvider>,
    ) -> Arc<Self> {
        Self::with_named_storage(config, authenticator, storage, BTreeMap::new())
    }

    /// Like [`Server::new`], with named storages besides the server's, for accounts and groups
    /// that name one.
    pub fn with_named_storage(
        config: ServerConfig,
        authenticator: Arc<dyn Authenticator>,
        storage: Arc<dyn StorageProvider>,
        named_storage: BTreeMap<String, Arc<dyn StorageProvider>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            passive_pool: PassivePortPool::new(&config.passive_ports),
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            throttle: LoginThrottle::new(config.login_throttle.clone()),
            metrics: Arc::default(),
            hash_slots: Arc::new(tokio::sync::Semaphore::new(concurrent_hashes())),
            unsettled: Arc::default(),
            config,
            authenticator,
            storage,
            named_storage,
            next_session_id: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The Prometheus exposition text of this server's counters.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(self.passive_pool.size(), self.passive_pool.available())
    }
}

/// Hashes that may run at once: reading and hashing a large file keeps a core busy, so a few per
/// core; more wait for the client to retry rather than queue up unseen.
fn concurrent_hashes() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * 2).max(4)
}

/// Serves control connections from `listener` until a graceful shutdown is requested, then waits
/// up to the configured grace period for running transfers to finish and stops the rest.
pub async fn run(listener: TcpListener, server: Arc<Server>, shutdown: Shutdown) {
    serve(listener, None, server, shutdown).await;
}

/// Like [`run`], with a second listener for implicit FTPS (TLS from the first byte).
pub async fn serve(
    listener: TcpListener,
    implicit_tls: Option<TcpListener>,
    server: Arc<Server>,
    shutdown: Shutdown,
) {
    let sessions = TaskTracker::new();
    loop {
        let implicit_accept = async {
            match &implicit_tls {
                Some(listener) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        let (accepted, kind) = tokio::select! {
            accepted = listener.accept() => (accepted, ListenerKind::Plain),
            accepted = implicit_accept => (accepted, ListenerKind::ImplicitTls),
            () = shutdown.graceful.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                warn!(%error, "accepting a control connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted before anything is read: a connection that never finishes its TLS handshake or
        // PROXY header holds a descriptor all the same (see `limits`).
        let slot = match admit(&server, peer) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse_at_accept(&server, stream, peer, kind, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Clients send ABOR as TCP urgent data (Python's ftplib sends the whole `ABOR\r\n` with
        // MSG_OOB). Without SO_OOBINLINE the kernel takes the urgent byte out of the stream and
        // the command never ends (RFC 6093 §5 asks for in-line urgent data).
        if let Err(error) = socket2::SockRef::from(&stream).set_out_of_band_inline(true) {
            warn!(%error, "cannot set SO_OOBINLINE on a control connection");
        }
        let id = server.next_session_id.fetch_add(1, Ordering::Relaxed);
        // `peer` is recorded once the session knows the client: behind a balancer, from the PROXY
        // header (read in the session's task, so a slow balancer never holds up the accept loop).
        let span = info_span!(
            "session",
            id,
            peer = tracing::field::Empty,
            balancer = tracing::field::Empty,
            host = tracing::field::Empty,
            user = tracing::field::Empty
        );
        let server = Arc::clone(&server);
        let shutdown = shutdown.clone();
        sessions
            .spawn(session::run(stream, peer, slot, server, shutdown, kind, id).instrument(span));
    }
    // Close the listeners first, so new connections are refused at once instead of waiting in
    // the backlog for a server that will never greet them.
    drop(listener);
    drop(implicit_tls);
    sessions.close();
    let grace = server.config.shutdown_grace;
    info!(
        sessions = sessions.len(),
        grace_secs = grace.as_secs(),
        "shutting down: no new connections; waiting for running transfers"
    );
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        warn!(
            sessions = sessions.len(),
            "shutdown grace period over; closing the remaining sessions"
        );
        shutdown.immediate.cancel();
        sessions.wait().await;
    }
}

/// Takes a connection slot for a connection just accepted from `peer`. A balancer's connection
/// names its client only in the PROXY header, read later in the session's task: until then it
/// counts in the total only, and the session counts it against the client once the header is in
/// (`ConnectionSlot::assign`). Counting it against the balancer's own address instead would cap
/// everybody behind the balancer at one address's share. Balancers are trusted networks, and
/// their headers arrive within `proxy::HEADER_TIMEOUT`, so the total bounds what they can hold.
fn admit(server: &Server, peer: SocketAddr) -> Result<ConnectionSlot, LimitExceeded> {
    if proxy::is_trusted(&server.config.proxy_protocol_from, peer.ip()) {
        server.limits.acquire_unaddressed()
    } else {
        server.limits.acquire(peer.ip())
    }
}

/// Turns away a connection over a limit without holding it: a plain one gets its `421` if the
/// socket takes it at once (a fresh socket's send buffer always does), an implicit TLS one is
/// closed (no TLS, so no reply it could read).
fn refuse_at_accept(
    server: &Server,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    refusal: LimitExceeded,
) {
    warn!(%peer, %refusal, "connection refused");
    if kind == ListenerKind::Plain {
        let reply = crate::protocol::Reply::new(
            crate::protocol::ReplyCode::SERVICE_NOT_AVAILABLE,
            format!("{refusal}."),
        );
        server.metrics.reply(reply.code.get());
        let _ = stream.try_write(&reply.to_bytes());
    }
}

/// Runs one session over an in-memory pipe, as if `peer` had connected to `local`: the whole
/// control loop with no socket under it (data connections still use real sockets). For fuzzing.
#[cfg(feature = "fuzzing")]
pub async fn serve_in_memory(
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    shutdown: Shutdown,
) {
    session::run_in_memory(stream, peer, local, server, shutdown).await;
}

/// Binds a control listener with a deep backlog, so a burst of logins is queued, not refused.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
