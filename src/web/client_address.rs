//! Who a request comes from: the TCP peer, or — when that peer is a reverse proxy named with
//! `--trusted-proxy` — the client the proxies name in `X-Forwarded-For` (else in `Forwarded:
//! for=`, RFC 7239). The login guard, the connection caps and the log all count clients by
//! this address. A peer that is not trusted is taken as it is: anyone can write those headers.
//!
//! Each proxy appends the address it got the request from, so the list is read from the right:
//! the first address that is not itself a trusted proxy is the client. What the client wrote
//! further left is never reached. An entry that is no address (`unknown`, an obfuscated name,
//! garbage) stops the walk at the last trusted hop, which is then counted as the client.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tracing::Instrument as _;

use super::AppState;

/// The networks whose connections are reverse proxies allowed to name the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether a connection from `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// `CIDR[,CIDR...]`; a bare address is a network of one.
    fn from_str(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "{item:?} is not an address or network; expected CIDR[,CIDR...] such \
                             as 127.0.0.1/32,10.0.0.0/8,::1"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

/// The client of a request that reached us from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(hop) = hop else { break };
        client = hop.to_canonical();
        if !trusted.contains(client) {
            break;
        }
    }
    client
}

/// The addresses the proxies named, oldest first: `X-Forwarded-For` if the request has one,
/// else the `for=` parameters of `Forwarded`. `None` for an entry that is no address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect()
    };
    let x_forwarded_for = values("x-forwarded-for");
    if !x_forwarded_for.is_empty() {
        return x_forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(node_address)
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_address(value))
            })
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, quoted or not.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(bracketed) = node.strip_prefix('[') {
        return bracketed.split_once(']')?.0.parse().ok();
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// The client's address, as [`client_address`] found it for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Finds the client of every request, for the handlers ([`ClientAddress`]) and for the log:
/// everything logged while the request is handled carries `client=ADDRESS`.
pub async fn identify_client(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        tracing::error!("a request without its connection's address");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let client = client_address(peer.ip(), request.headers(), &state.trusted_proxies);
    request.extensions_mut().insert(ClientAddress(client));
    let span = tracing::info_span!("request", client = %client);
    next.run(request).instrument(span).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .ok_or_else(|| {
                tracing::error!("the client address was not found before the handler");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "127.0.0.1";

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn client(peer: &str, headers: &[(&str, &str)], trusted: &TrustedProxies) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        client_address(peer.parse().unwrap(), &map, trusted).to_string()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(PROXY, &xff, &none), PROXY);
        let other = trusted("10.0.0.0/8");
        assert_eq!(client(PROXY, &xff, &other), PROXY);
        assert_eq!(
            client(PROXY, &[("forwarded", "for=203.0.113.9")], &other),
            PROXY
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let proxies = trusted("127.0.0.1/32, 10.0.0.0/8");
        // The client wrote the first two; our proxies appended the rest.
        let xff = [("x-forwarded-for", "1.1.1.1, 6.6.6.6, 203.0.113.9, 10.0.0.2")];
        assert_eq!(client(PROXY, &xff, &proxies), "203.0.113.9");
        // Several header lines are one list, in order.
        let split = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9:5123"),
        ];
        assert_eq!(client(PROXY, &split, &proxies), "203.0.113.9");
        // No header: the proxy itself is the client.
        assert_eq!(client(PROXY, &[], &proxies), PROXY);
        // Only proxies: the first of them.
        let inside = [("x-forwarded-for", "10.0.0.7, 10.0.0.2")];
        assert_eq!(client(PROXY, &inside, &proxies), "10.0.0.7");
    }

    #[test]
    fn an_entry_that_is_no_address_stops_at_the_last_trusted_hop() {
        let proxies = trusted("127.0.0.1,10.0.0.0/8");
        let xff = [("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.2")];
        assert_eq!(client(PROXY, &xff, &proxies), "10.0.0.2");
        let xff = [("x-forwarded-for", "unknown")];
        assert_eq!(client(PROXY, &xff, &proxies), PROXY);
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = trusted("127.0.0.1/32");
        let forwarded = [(
            "forwarded",
            r#"for=6.6.6.6;proto=https, for="[2001:db8:cafe::17]:4711";by=127.0.0.1"#,
        )];
        assert_eq!(client(PROXY, &forwarded, &proxies), "2001:db8:cafe::17");
        let both = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(PROXY, &both, &proxies), "203.0.113.9");
        let obfuscated = [("forwarded", "for=_hidden")];
        assert_eq!(client(PROXY, &obfuscated, &proxies), PROXY);
    }

    #[test]
    fn ipv4_mapped_peers_and_bare_addresses_are_understood() {
        let proxies = trusted("127.0.0.1, ::1");
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client("::ffff:127.0.0.1", &xff, &proxies), "203.0.113.9");
        assert_eq!(client("::1", &xff, &proxies), "203.0.113.9");
        assert!("127.0.0.1/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.local".parse::<TrustedProxies>().is_err());
        assert_eq!(
            "10.1.2.3/8".parse::<TrustedProxies>().unwrap(),
            trusted("10.0.0.0/8")
        );
    }
}
