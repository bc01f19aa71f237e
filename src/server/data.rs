//! The data connection: prepared by PASV/EPSV (listen) or PORT/EPRT (connect), opened for one
//! transfer, closed after it.
//!
//! Two rules guard it. A passive port accepts only a connection from the control connection's
//! address; anyone else is turned away and the port keeps waiting (data-connection theft, RFC 2577
//! §4). Active mode only ever connects back to the client's own address on an unprivileged port
//! (FTP bounce, RFC 2577 §3); [`check_active_target`] decides that before anything is dialled.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::warn;

use super::metrics::ServerMetrics;
use super::passive::PortLease;
use super::resumption::{ForeignSession, ResumedFrom};

/// How the next data connection will be made.
#[derive(Debug, Default)]
pub(crate) enum DataSetup {
    #[default]
    None,
    Passive(PassiveEndpoint),
    Active(SocketAddr),
}

/// A listening passive port and its lease.
#[derive(Debug)]
pub(crate) struct PassiveEndpoint {
    pub(crate) listener: TcpListener,
    pub(crate) lease: PortLease,
    /// When an idle session gives the port back if no transfer command has used it: a client
    /// that sends PASV and nothing else must not hold a port of a small pool for long.
    pub(crate) expires: Instant,
}

/// The byte stream of an open data connection.
#[derive(Debug)]
pub(crate) enum DataStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl DataStream {
    /// Whether the client ended the data with a TLS close_notify (never, on a plain connection).
    /// Without one, a TLS upload that stopped is taken as ended (see the `AsyncRead` impl), but it
    /// may as well have been cut off.
    pub(crate) fn received_close_notify(&mut self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls(tls) => tls
                .get_mut()
                .1
                .process_new_packets()
                .is_ok_and(|state| state.peer_has_closed()),
        }
    }

    /// Ends the data connection cleanly: close_notify (under TLS) and FIN, so the client sees a
    /// complete transfer. The client's own close_notify is collected in the background, so the
    /// final reply does not wait for it.
    pub(crate) async fn close(self) {
        match self {
            Self::Plain(mut tcp) => {
                let _ = tcp.shutdown().await;
            }
            Self::Tls(mut tls) => {
                if tls.shutdown().await.is_err() {
                    return;
                }
                tokio::spawn(async move {
                    let mut scratch = [0u8; 256];
                    let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, async {
                        while matches!(tls.read(&mut scratch).await, Ok(n) if n > 0) {}
                    })
                    .await;
                });
            }
        }
    }
}

/// How long a closed TLS data connection waits for the client's close_notify.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// TLS on the data connection (PROT P).
#[derive(Debug)]
pub(crate) struct DataTls {
    /// This data connection's configuration: it can resume the control connection's TLS
    /// sessions and those of its user's other control connections (see `super::resumption`).
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// What the handshake resumed, for the check after it; `None` without session tickets.
    pub(crate) resumed_from: Option<ResumedFrom>,
    pub(crate) require_resumption: bool,
    pub(crate) metrics: Arc<ServerMetrics>,
}

/// What `--require-tls-resumption` asks of a data connection, as the client should read it.
const REUSE_REQUIRED: &str = "this server requires TLS session reuse: a data connection must resume the TLS session of this control connection, or of another control connection logged in as the same user from the same address";

/// Why the data connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    #[error("no data connection arrived within {} s", .0.as_secs())]
    AcceptTimeout(Duration),
    #[error("could not connect to {0}: {1}")]
    Connect(SocketAddr, io::Error),
    #[error("data connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("TLS negotiation on the data connection failed: {0}")]
    Tls(io::Error),
    #[error(
        "{REUSE_REQUIRED}, but this one started a new TLS session; turn on TLS session reuse (resumption) in your client"
    )]
    NotResumed,
    #[error("{REUSE_REQUIRED}, but {0}")]
    ForeignSession(ForeignSession),
}

/// What opening a data connection needs to know about the session.
#[derive(Debug)]
pub(crate) struct DataParams {
    /// The client's address on the control connection (behind a balancer: from its PROXY header).
    pub(crate) peer_ip: IpAddr,
    /// The balancer the control connection came through, if it did.
    ///
    /// Balancers forward the passive port range at the TCP level, without a PROXY header (FTP
    /// data connections carry none). One that NATs presents its own address as the source of
    /// the data connection; one that routes transparently presents the client's. Both must pass
    /// the peer check, but the balancer's address only for a session whose control connection
    /// came through it: a direct client never gets the balancer accepted on its behalf.
    pub(crate) balancer_ip: Option<IpAddr>,
    /// The server's address on the control connection.
    pub(crate) local_ip: IpAddr,
    pub(crate) timeout: Duration,
    /// Set under PROT P.
    pub(crate) tls: Option<DataTls>,
}

impl DataSetup {
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// When a prepared passive port that no transfer has used yet goes back to the pool.
    pub(crate) fn passive_expiry(&self) -> Option<Instant> {
        match self {
            Self::Passive(endpoint) => Some(endpoint.expires),
            _ => None,
        }
    }

    /// Opens the data connection (with TLS under PROT P); the setup is used up either way.
    pub(crate) async fn open(self, params: DataParams) -> Result<DataStream, DataError> {
        let tcp = match self {
            Self::None => return Err(DataError::Io(io::Error::other("no data connection set up"))),
            Self::Passive(endpoint) => accept_from_peer(endpoint, &params).await?,
            Self::Active(target) => connect_to_client(target, &params).await?,
        };
        let Some(tls) = params.tls else {
            return Ok(DataStream::Plain(tcp));
        };
        // RFC 4217 §9: the FTP server is the TLS server on data connections, in both modes.
        let accept = TlsAcceptor::from(tls.config).accept(tcp);
        // A client that connects but never starts TLS (PROT P forgotten on its side) is a failed
        // negotiation too: 522, not the 425 of a connection that never came.
        let stream = tokio::time::timeout(params.timeout, accept)
            .await
            .map_err(|_| {
                DataError::Tls(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no TLS handshake from the client within {} s",
                        params.timeout.as_secs()
                    ),
                ))
            })?
            .map_err(DataError::Tls);
        tls.metrics.tls_handshake("data", stream.is_ok());
        let stream = stream?;
        if tls.require_resumption {
            let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
            if !resumed {
                warn!("refused a TLS data connection that did not resume a TLS session");
                return Err(DataError::NotResumed);
            }
            if let Some(resumed_from) = tls.resumed_from {
                // Nothing has been sent on the connection yet: a refused one carries no byte.
                if let Err(refusal) = resumed_from.verify(params.timeout).await {
                    warn!(%refusal, "refused a resumed TLS data connection");
                    return Err(DataError::ForeignSession(refusal));
                }
            }
        }
        Ok(DataStream::Tls(Box::new(stream)))
    }
}

async fn accept_from_peer(
    endpoint: PassiveEndpoint,
    params: &DataParams,
) -> Result<TcpStream, DataError> {
    let deadline = Instant::now() + params.timeout;
    let peer_ip = params.peer_ip.to_canonical();
    let balancer_ip = params.balancer_ip.map(|ip| ip.to_canonical());
    loop {
        let accepted = tokio::time::timeout_at(deadline, endpoint.listener.accept()).await;
        let (stream, from) = match accepted {
            Err(_) => return Err(DataError::AcceptTimeout(params.timeout)),
            Ok(result) => result?,
        };
        let from_ip = from.ip().to_canonical();
        if from_ip == peer_ip || Some(from_ip) == balancer_ip {
            // The connection has arrived: the port goes back to the pool now.
            drop(endpoint.listener);
            drop(endpoint.lease);
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
        warn!(
            from = %from,
            control_peer = %peer_ip,
            "refused a data connection from an address other than the control connection's"
        );
    }
}

async fn connect_to_client(
    target: SocketAddr,
    params: &DataParams,
) -> Result<TcpStream, DataError> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| DataError::Connect(target, e))?;
    // Leave from the address the client talks to, so its firewall recognises the server.
    let local = match params.local_ip.to_canonical() {
        IpAddr::V4(v4) if target.is_ipv4() => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) if target.is_ipv6() => Some(IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(local) = local {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|e| DataError::Connect(target, e))?;
    }
    let stream = tokio::time::timeout(params.timeout, socket.connect(target))
        .await
        .map_err(|_| DataError::AcceptTimeout(params.timeout))?
        .map_err(|e| DataError::Connect(target, e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Why PORT/EPRT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ActiveRefusal {
    #[error("active mode connects only to your own address ({0}); use that address or PASV")]
    ForeignAddress(IpAddr),
    #[error(
        "active mode does not connect to privileged ports (below 1024); use a port of 1024 or more"
    )]
    PrivilegedPort,
}

/// RFC 2577: connect back only to the client itself, and never to a privileged port.
pub(crate) fn check_active_target(
    target: SocketAddr,
    peer_ip: IpAddr,
) -> Result<(), ActiveRefusal> {
    let peer_ip = peer_ip.to_canonical();
    if target.ip().to_canonical() != peer_ip {
        return Err(ActiveRefusal::ForeignAddress(peer_ip));
    }
    if target.port() < 1024 {
        return Err(ActiveRefusal::PrivilegedPort);
    }
    Ok(())
}

impl AsyncRead for DataStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            // Many clients end an upload with a TCP close and no close_notify; like vsftpd's
            // default (strict_ssl_read_eof=NO), that counts as the end of the data. A client that
            // vanishes mid-upload is caught by its closed control connection instead.
            Self::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_mode_only_to_the_client_itself_and_unprivileged_ports() {
        let peer: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            check_active_target("192.0.2.10:2000".parse().unwrap(), peer),
            Ok(())
        );
        assert_eq!(
            check_active_target("192.0.2.11:2000".parse().unwrap(), peer),
            Err(ActiveRefusal::ForeignAddress(peer))
        );
        assert_eq!(
            check_active_target("192.0.2.10:25".parse().unwrap(), peer),
            Err(ActiveRefusal::PrivilegedPort)
        );
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().unwrap();
        assert_eq!(
            check_active_target("192.0.2.10:2000".parse().unwrap(), mapped),
            Ok(())
        );
    }

    #[tokio::test]
    async fn passive_port_turns_away_other_addresses_and_keeps_waiting() {
        let pool = super::super::passive::PassivePortPool::new(&super::super::PortRanges::any());
        let (listener, lease) = pool.listen("127.0.0.1".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let setup = DataSetup::Passive(PassiveEndpoint {
            listener,
            lease,
            expires: Instant::now() + Duration::from_secs(5),
        });
        let params = DataParams {
            // Pretend the control connection came from 127.0.0.2.
            peer_ip: "127.0.0.2".parse().unwrap(),
            balancer_ip: None,
            local_ip: "127.0.0.1".parse().unwrap(),
            timeout: Duration::from_secs(5),
            tls: None,
        };
        let opened = tokio::spawn(setup.open(params));
        // A thief from 127.0.0.1 is refused (its connection is closed)...
        let mut thief = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut byte = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut thief, &mut byte)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "the thief's connection must be closed");
        // ...and the rightful client from 127.0.0.2 gets through.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let _client = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        assert!(opened.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn passive_port_accepts_the_balancer_only_for_a_session_that_came_through_it() {
        let pool = super::super::passive::PassivePortPool::new(&super::super::PortRanges::any());
        let (listener, lease) = pool.listen("127.0.0.1".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let setup = DataSetup::Passive(PassiveEndpoint {
            listener,
            lease,
            expires: Instant::now() + Duration::from_secs(5),
        });
        let params = DataParams {
            // A client at 192.0.2.7 behind a NATing balancer at 127.0.0.3.
            peer_ip: "192.0.2.7".parse().unwrap(),
            balancer_ip: Some("127.0.0.3".parse().unwrap()),
            local_ip: "127.0.0.1".parse().unwrap(),
            timeout: Duration::from_secs(5),
            tls: None,
        };
        let opened = tokio::spawn(setup.open(params));
        let mut stranger = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut byte = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut stranger, &mut byte)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "a connection from neither address must be closed");
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        let _balancer = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        assert!(opened.await.unwrap().is_ok());
    }
}
