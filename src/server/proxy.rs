//! The PROXY protocol on control connections: which peers must send a header, and reading it off
//! the socket before the greeting.
//!
//! Only connections from the configured balancer networks are read for a header, and from them a
//! header is required: a client that could reach the server directly must never be able to claim
//! another address by sending a header of its own. Parsing is [`crate::protocol::proxy`]'s job.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::protocol::proxy::{self, Parsed, ProxyError, ProxyHeader};

/// How long a balancer gets to send its header: it sends it at once, with the first packet.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the first peek takes in; a header with addresses and a few TLVs fits.
const PEEK_LEN: usize = 256;

/// Who is at the other end of a control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlPeer {
    /// The client: the TCP peer, or the source a trusted balancer's header names.
    pub(crate) client: SocketAddr,
    /// The balancer the connection came through, when its header named a client.
    pub(crate) balancer: Option<SocketAddr>,
}

/// Why a connection from a balancer network was closed before the greeting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyReadError {
    #[error("no PROXY header within {} s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    /// Closed before sending a byte: what a balancer's plain TCP health check does.
    #[error("the connection closed before sending anything (a health check?)")]
    Silent,
    #[error("the connection closed before a whole PROXY header arrived")]
    Closed,
    #[error(transparent)]
    Header(#[from] ProxyError),
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] io::Error),
}

/// True if `ip` is in one of the balancer networks.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// Finds out who the client is: from the PROXY header when `tcp_peer` is a trusted balancer,
/// else the TCP peer itself (no byte is read then).
pub(crate) async fn identify(
    stream: &mut TcpStream,
    tcp_peer: SocketAddr,
    trusted: &[IpNet],
) -> Result<ControlPeer, ProxyReadError> {
    let direct = ControlPeer {
        client: tcp_peer,
        balancer: None,
    };
    if !is_trusted(trusted, tcp_peer.ip()) {
        return Ok(direct);
    }
    let header = tokio::time::timeout(HEADER_TIMEOUT, read_header(stream))
        .await
        .map_err(|_| ProxyReadError::Timeout)??;
    // LOCAL (health checks) and protocols without addresses keep the real endpoints (§2.1, §2.2).
    Ok(match header.client() {
        Some(client) => ControlPeer {
            client,
            balancer: Some(tcp_peer),
        },
        None => direct,
    })
}

/// Reads exactly the header, leaving what follows (a TLS ClientHello, a command) in the socket.
async fn read_header(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyReadError> {
    // A balancer sends the header in one segment, so one peek usually sees all of it.
    let mut first = [0u8; PEEK_LEN];
    let seen = stream.peek(&mut first).await?;
    if seen == 0 {
        return Err(ProxyReadError::Silent);
    }
    let mut at_least = match proxy::parse(&first[..seen])? {
        Parsed::Complete { header, len } => {
            stream.read_exact(&mut first[..len]).await?;
            return Ok(header);
        }
        Parsed::Incomplete { at_least } => at_least,
    };
    // Otherwise read no more than the parser asks for: those bytes are all header.
    let mut buf = Vec::with_capacity(at_least);
    loop {
        let have = buf.len();
        buf.resize(at_least, 0);
        stream
            .read_exact(&mut buf[have..])
            .await
            .map_err(|error| match error.kind() {
                io::ErrorKind::UnexpectedEof => ProxyReadError::Closed,
                _ => ProxyReadError::Io(error),
            })?;
        match proxy::parse(&buf)? {
            Parsed::Complete { header, .. } => return Ok(header),
            Parsed::Incomplete { at_least: more } => at_least = more,
        }
    }
}

/// Parses the balancer networks: CIDRs or single addresses, comma-separated.
pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "{entry:?} in proxy_protocol_from is not a network such as 10.0.0.0/8 or an address"
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses_are_trusted_and_nothing_else() {
        let trusted = parse_networks("10.0.0.0/8, 192.0.2.10,2001:db8::/32").unwrap();
        assert!(is_trusted(&trusted, "10.1.2.3".parse().unwrap()));
        assert!(is_trusted(&trusted, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(is_trusted(&trusted, "192.0.2.10".parse().unwrap()));
        assert!(!is_trusted(&trusted, "192.0.2.11".parse().unwrap()));
        assert!(is_trusted(&trusted, "2001:db8::5".parse().unwrap()));
        assert!(!is_trusted(&[], "10.1.2.3".parse().unwrap()));
        assert!(
            parse_networks("10.0.0.0/33")
                .unwrap_err()
                .contains("proxy_protocol_from")
        );
        assert_eq!(parse_networks("").unwrap(), Vec::<IpNet>::new());
    }
}
