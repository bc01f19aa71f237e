//! The PROXY protocol header (versions 1 and 2) that TCP load balancers such as HAProxy put in
//! front of a connection to say who the client really is.
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>. Version 1 is one
//! text line of at most 107 bytes (§2.1); version 2 is a 16-byte binary header followed by the
//! addresses and optional TLVs (§2.2). Only TCP over IPv4 and IPv6 carries addresses here; every
//! other protocol, v1 `UNKNOWN` and v2 `LOCAL` leave the real connection endpoints in force, as the
//! specification asks. TLVs are skipped.
//!
//! [`parse`] never asks for more bytes than the header holds, so a reader that feeds it exactly
//! [`Parsed::Incomplete::at_least`] bytes never takes a byte of what follows the header (a TLS
//! ClientHello, a pipelined command).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The longest version 1 line, CRLF included (§2.1).
pub const V1_MAX_LEN: usize = 107;
/// The shortest version 1 line: `PROXY UNKNOWN\r\n`.
const V1_MIN_LEN: usize = 15;
/// The twelve bytes that open every version 2 header (§2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport and length.
pub const V2_FIXED_LEN: usize = 16;
/// The most address and TLV bytes accepted after the fixed part. The format allows 65,535; real
/// balancers send a few hundred at most (addresses, ALPN, TLS details), so more is refused rather
/// than buffered.
pub const V2_MAX_PAYLOAD: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";
/// The fewest bytes worth reading before the version is known: either version's header is at least
/// this long.
const MIN_HEADER_LEN: usize = V1_MIN_LEN;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Version 2 `LOCAL`: the balancer speaks for itself (a health check); the real connection
    /// endpoints stand.
    Local,
    /// Version 1 `UNKNOWN`, or version 2 `PROXY` for something other than TCP over IPv4 or IPv6
    /// (UDP, UNIX sockets, unspecified): the real connection endpoints stand.
    Unknown,
    /// A TCP connection from `source` (the client) to `destination` (the address the client
    /// connected to, on the balancer).
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
}

impl ProxyHeader {
    /// The client's address, when the header names one.
    pub fn client(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp { source, .. } => Some(*source),
            Self::Local | Self::Unknown => None,
        }
    }
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; whatever follows is the proxied connection's own data.
    Complete { header: ProxyHeader, len: usize },
    /// A valid beginning: read until there are at least `at_least` bytes in all, then parse again.
    /// Never more than the header holds.
    Incomplete { at_least: usize },
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header (v1 \"PROXY ...\" or v2)")]
    NotProxy,
    #[error("the PROXY v1 line is longer than the 107 bytes the protocol allows")]
    V1TooLong,
    #[error("the PROXY v1 line is malformed: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v2 header version {0} is not 2")]
    V2Version(u8),
    #[error("PROXY v2 command {0:#x} is neither LOCAL (0) nor PROXY (1)")]
    V2Command(u8),
    #[error("PROXY v2 address family/transport byte {0:#04x} is not defined")]
    V2Family(u8),
    #[error(
        "the PROXY v2 header announces {0} bytes of addresses and TLVs, more than the 4096 accepted"
    )]
    V2TooLong(usize),
    #[error("the PROXY v2 header is too short for its {0} addresses")]
    V2ShortAddresses(&'static str),
}

/// Parses a PROXY header (either version) at the start of `input`.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    if input.is_empty() {
        return Ok(Parsed::Incomplete {
            at_least: MIN_HEADER_LEN,
        });
    }
    if starts_like(input, &V2_SIGNATURE) {
        if input.len() < V2_FIXED_LEN {
            return Ok(Parsed::Incomplete {
                at_least: V2_FIXED_LEN,
            });
        }
        parse_v2(input)
    } else if starts_like(input, V1_PREFIX) {
        if input.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete {
                at_least: MIN_HEADER_LEN,
            });
        }
        parse_v1(input)
    } else {
        Err(ProxyError::NotProxy)
    }
}

/// True if `input` and `prefix` agree on their common length.
fn starts_like(input: &[u8], prefix: &[u8]) -> bool {
    let n = input.len().min(prefix.len());
    input[..n] == prefix[..n]
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    // The CR of the longest line sits at index 105; a line with none there is too long.
    let window = &input[..input.len().min(V1_MAX_LEN - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        check_v1_bytes(window)?;
        if window.len() == V1_MAX_LEN - 1 {
            return Err(ProxyError::V1TooLong);
        }
        // At least a CR and an LF to come.
        return Ok(Parsed::Incomplete {
            at_least: (window.len() + 2).max(MIN_HEADER_LEN),
        });
    };
    let line = &window[..cr];
    check_v1_bytes(line)?;
    match input.get(cr + 1) {
        None => {
            return Ok(Parsed::Incomplete {
                at_least: (cr + 2).max(MIN_HEADER_LEN),
            });
        }
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1Malformed("a CR not followed by LF")),
    }
    let len = cr + 2;
    let text = std::str::from_utf8(&line[V1_PREFIX.len()..])
        .map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    let header = parse_v1_fields(text)?;
    Ok(Parsed::Complete { header, len })
}

/// Only printable ASCII may come before the CRLF; catching anything else early keeps a reader from
/// waiting for the rest of a line that is not a PROXY line.
fn check_v1_bytes(line: &[u8]) -> Result<(), ProxyError> {
    if line.iter().all(|b| (b' '..=b'~').contains(b)) {
        Ok(())
    } else {
        Err(ProxyError::V1Malformed(
            "a byte other than printable ASCII before the CRLF",
        ))
    }
}

/// `TCP4 SRC DST SPORT DPORT`, `TCP6 ...`, or `UNKNOWN` followed by anything (§2.1).
fn parse_v1_fields(text: &str) -> Result<ProxyHeader, ProxyError> {
    if text == "UNKNOWN" || text.starts_with("UNKNOWN ") {
        return Ok(ProxyHeader::Unknown);
    }
    let mut fields = text.split(' ');
    let protocol = fields.next().unwrap_or_default();
    let mut next = |what| fields.next().ok_or(ProxyError::V1Malformed(what));
    let (source, destination) = (next("no source address")?, next("no destination address")?);
    let (source_port, destination_port) = (next("no source port")?, next("no destination port")?);
    if fields.next().is_some() {
        return Err(ProxyError::V1Malformed("more than five fields"));
    }
    let (source, destination) = match protocol {
        "TCP4" => (v1_ipv4(source)?, v1_ipv4(destination)?),
        "TCP6" => (v1_ipv6(source)?, v1_ipv6(destination)?),
        _ => {
            return Err(ProxyError::V1Malformed(
                "the protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    Ok(ProxyHeader::Tcp {
        source: SocketAddr::new(source, v1_port(source_port)?),
        destination: SocketAddr::new(destination, v1_port(destination_port)?),
    })
}

fn v1_ipv4(text: &str) -> Result<IpAddr, ProxyError> {
    Ipv4Addr::from_str(text)
        .map(IpAddr::V4)
        .map_err(|_| ProxyError::V1Malformed("a TCP4 address is not a dotted IPv4 address"))
}

fn v1_ipv6(text: &str) -> Result<IpAddr, ProxyError> {
    Ipv6Addr::from_str(text)
        .map(IpAddr::V6)
        .map_err(|_| ProxyError::V1Malformed("a TCP6 address is not an IPv6 address"))
}

/// A decimal port, 0-65535, without a sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    well_formed
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .ok_or(ProxyError::V1Malformed("a port is not a number 0-65535"))
}

fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    let version_command = input[12];
    let (version, command) = (version_command >> 4, version_command & 0x0f);
    if version != 2 {
        return Err(ProxyError::V2Version(version));
    }
    if command > 1 {
        return Err(ProxyError::V2Command(command));
    }
    let family = input[13];
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(ProxyError::V2Family(family));
    }
    let payload_len = usize::from(u16::from_be_bytes([input[14], input[15]]));
    if payload_len > V2_MAX_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload_len));
    }
    let len = V2_FIXED_LEN + payload_len;
    if input.len() < len {
        return Ok(Parsed::Incomplete { at_least: len });
    }
    let payload = &input[V2_FIXED_LEN..len];
    let header = if command == 0 {
        // §2.2: a LOCAL header's address block is to be ignored.
        ProxyHeader::Local
    } else {
        match family {
            0x11 => {
                let addresses = payload
                    .get(..12)
                    .ok_or(ProxyError::V2ShortAddresses("IPv4"))?;
                let ip = |at: usize| {
                    IpAddr::V4(Ipv4Addr::from(
                        <[u8; 4]>::try_from(&addresses[at..at + 4]).unwrap(),
                    ))
                };
                v2_tcp(ip(0), ip(4), &addresses[8..12])
            }
            0x21 => {
                let addresses = payload
                    .get(..36)
                    .ok_or(ProxyError::V2ShortAddresses("IPv6"))?;
                let ip = |at: usize| {
                    IpAddr::V6(Ipv6Addr::from(
                        <[u8; 16]>::try_from(&addresses[at..at + 16]).unwrap(),
                    ))
                };
                v2_tcp(ip(0), ip(16), &addresses[32..36])
            }
            _ => ProxyHeader::Unknown,
        }
    };
    Ok(Parsed::Complete { header, len })
}

fn v2_tcp(source: IpAddr, destination: IpAddr, ports: &[u8]) -> ProxyHeader {
    ProxyHeader::Tcp {
        source: SocketAddr::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

/// Writes `header` as a version 1 line. Version 1 has no `LOCAL`: it is written as `UNKNOWN`. A
/// mixed IPv4/IPv6 pair is written as TCP6 with IPv4-mapped addresses.
pub fn encode_v1(header: &ProxyHeader) -> String {
    match *header {
        ProxyHeader::Local | ProxyHeader::Unknown => "PROXY UNKNOWN\r\n".to_owned(),
        ProxyHeader::Tcp {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => format!(
                "PROXY TCP4 {s} {d} {} {}\r\n",
                source.port(),
                destination.port()
            ),
            (s, d) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                as_ipv6(s),
                as_ipv6(d),
                source.port(),
                destination.port()
            ),
        },
    }
}

/// Writes `header` as a version 2 header with no TLVs (`Unknown` as `PROXY` with an unspecified
/// family). A mixed IPv4/IPv6 pair is written as IPv6 with IPv4-mapped addresses.
pub fn encode_v2(header: &ProxyHeader) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    let (command, family, payload) = match *header {
        ProxyHeader::Local => (0x20, 0x00, Vec::new()),
        ProxyHeader::Unknown => (0x21, 0x00, Vec::new()),
        ProxyHeader::Tcp {
            source,
            destination,
        } => {
            let mut payload = Vec::with_capacity(36);
            let family = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    payload.extend_from_slice(&s.octets());
                    payload.extend_from_slice(&d.octets());
                    0x11
                }
                (s, d) => {
                    payload.extend_from_slice(&as_ipv6(s).octets());
                    payload.extend_from_slice(&as_ipv6(d).octets());
                    0x21
                }
            };
            payload.extend_from_slice(&source.port().to_be_bytes());
            payload.extend_from_slice(&destination.port().to_be_bytes());
            (0x21, family, payload)
        }
    };
    out.push(command);
    out.push(family);
    let len = u16::try_from(payload.len()).expect("at most 36 bytes of addresses");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

fn as_ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Ok(Parsed::Complete { header, len }) => (header, len),
            other => panic!("{input:?}: expected a whole header, got {other:?}"),
        }
    }

    fn tcp(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Tcp {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6_lines_name_the_client() {
        let line = b"PROXY TCP4 192.0.2.7 203.0.113.1 56324 21\r\nUSER alice\r\n";
        let (header, len) = complete(line);
        assert_eq!(header, tcp("192.0.2.7:56324", "203.0.113.1:21"));
        assert_eq!(&line[len..], b"USER alice\r\n");
        let (header, len) = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 990\r\n");
        assert_eq!(header, tcp("[2001:db8::7]:4000", "[2001:db8::1]:990"));
        assert_eq!(len, 45);
        assert_eq!(header.client(), Some("[2001:db8::7]:4000".parse().unwrap()));
    }

    #[test]
    fn v1_unknown_ignores_the_rest_of_the_line() {
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (ProxyHeader::Unknown, 15));
        let (header, len) = complete(b"PROXY UNKNOWN ffff:: 1.2.3.4 1 2\r\n");
        assert_eq!((header, len), (ProxyHeader::Unknown, 34));
        assert_eq!(header.client(), None);
    }

    #[test]
    fn v1_mistakes_are_named() {
        let cases: &[(&[u8], ProxyError)] = &[
            (b"GET / HTTP/1.0\r\n", ProxyError::NotProxy),
            (b"USER alice\r\n", ProxyError::NotProxy),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                ProxyError::V1Malformed("a byte other than printable ASCII before the CRLF"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
                ProxyError::V1Malformed("a CR not followed by LF"),
            ),
            (
                b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
                ProxyError::V1Malformed("a TCP4 address is not a dotted IPv4 address"),
            ),
            (
                b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
                ProxyError::V1Malformed("a TCP6 address is not an IPv6 address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                ProxyError::V1Malformed("a port is not a number 0-65535"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 021 2\r\n",
                ProxyError::V1Malformed("a port is not a number 0-65535"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                ProxyError::V1Malformed("no destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                ProxyError::V1Malformed("more than five fields"),
            ),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                ProxyError::V1Malformed("more than five fields"),
            ),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                ProxyError::V1Malformed("the protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
        ];
        for (input, error) in cases {
            assert_eq!(
                parse(input),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn v1_line_longer_than_107_bytes_is_refused_without_waiting_for_its_end() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(complete(&line).1, V1_MAX_LEN);
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 1, b'x');
        assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
        long.resize(500, b'x');
        assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_ipv4_and_ipv6_headers_name_the_client_and_tlvs_are_skipped() {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
        bytes.extend_from_slice(&[192, 0, 2, 7, 203, 0, 113, 1, 0xdc, 0x04, 0, 21]);
        // A PP2_TYPE_ALPN TLV and a PP2_TYPE_NOOP TLV.
        bytes.extend_from_slice(&[0x01, 0, 1, b'h', 0x04, 0, 0]);
        bytes.extend_from_slice(b"tail");
        let (header, len) = complete(&bytes);
        assert_eq!(header, tcp("192.0.2.7:56324", "203.0.113.1:21"));
        assert_eq!(&bytes[len..], b"tail");

        let header = tcp("[2001:db8::7]:4000", "[2001:db8::1]:990");
        let encoded = encode_v2(&header);
        assert_eq!(encoded.len(), 16 + 36);
        assert_eq!(complete(&encoded), (header, 52));
    }

    #[test]
    fn v2_local_and_other_protocols_keep_the_real_endpoints() {
        let mut local = V2_SIGNATURE.to_vec();
        // LOCAL with an address block that is to be ignored.
        local.extend_from_slice(&[0x20, 0x11, 0, 12]);
        local.extend_from_slice(&[0; 12]);
        assert_eq!(complete(&local), (ProxyHeader::Local, 28));
        for family in [0x00, 0x12, 0x22, 0x31, 0x32, 0x01] {
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.extend_from_slice(&[0x21, family, 0, 4, 1, 2, 3, 4]);
            assert_eq!(complete(&bytes), (ProxyHeader::Unknown, 20), "{family:#x}");
        }
    }

    #[test]
    fn v2_mistakes_are_named() {
        let header = |rest: &[u8]| [&V2_SIGNATURE[..], rest].concat();
        assert_eq!(
            parse(&header(&[0x11, 0x11, 0, 0])),
            Err(ProxyError::V2Version(1))
        );
        assert_eq!(
            parse(&header(&[0x22, 0x11, 0, 0])),
            Err(ProxyError::V2Command(2))
        );
        assert_eq!(
            parse(&header(&[0x21, 0x41, 0, 0])),
            Err(ProxyError::V2Family(0x41))
        );
        assert_eq!(
            parse(&header(&[0x21, 0x13, 0, 0])),
            Err(ProxyError::V2Family(0x13))
        );
        assert_eq!(
            parse(&header(&[0x21, 0x11, 0x10, 0x01])),
            Err(ProxyError::V2TooLong(4097))
        );
        assert_eq!(
            parse(&header(&[0x21, 0x11, 0, 4, 1, 2, 3, 4])),
            Err(ProxyError::V2ShortAddresses("IPv4"))
        );
        assert_eq!(
            parse(&header(&[
                0x21, 0x21, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
            ])),
            Err(ProxyError::V2ShortAddresses("IPv6"))
        );
        // A broken signature is not a PROXY header at all.
        let mut bad = header(&[0x21, 0x11, 0, 0]);
        bad[5] = b'X';
        assert_eq!(parse(&bad), Err(ProxyError::NotProxy));
    }

    #[test]
    fn short_beginnings_ask_for_more_without_overreading() {
        assert_eq!(parse(b""), Ok(Parsed::Incomplete { at_least: 15 }));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete { at_least: 15 }));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete { at_least: 16 }));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
            Ok(Parsed::Incomplete { at_least: 32 })
        );
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0, 12]);
        assert_eq!(parse(&bytes), Ok(Parsed::Incomplete { at_least: 28 }));
    }

    fn any_header() -> impl Strategy<Value = ProxyHeader> {
        let v4 = (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(s, d, sp, dp)| ProxyHeader::Tcp {
                source: SocketAddr::new(Ipv4Addr::from(s).into(), sp),
                destination: SocketAddr::new(Ipv4Addr::from(d).into(), dp),
            });
        let v6 = (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(s, d, sp, dp)| ProxyHeader::Tcp {
                source: SocketAddr::new(Ipv6Addr::from(s).into(), sp),
                destination: SocketAddr::new(Ipv6Addr::from(d).into(), dp),
            });
        prop_oneof![Just(ProxyHeader::Local), Just(ProxyHeader::Unknown), v4, v6]
    }

    /// Feeds `bytes` the way a careful reader does: never more than `at_least` asks for.
    fn read_like_a_server(bytes: &[u8]) -> (ProxyHeader, usize) {
        let mut have = 0;
        loop {
            match parse(&bytes[..have]).unwrap() {
                Parsed::Complete { header, len } => return (header, len),
                Parsed::Incomplete { at_least } => {
                    assert!(at_least > have, "no progress at {have}");
                    have = at_least;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn v1_round_trips_and_reading_stops_at_its_end(
            header in any_header(),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let line = encode_v1(&header);
            prop_assert!(line.len() <= V1_MAX_LEN);
            let bytes = [line.as_bytes(), &tail].concat();
            let expected = if header == ProxyHeader::Local { ProxyHeader::Unknown } else { header };
            prop_assert_eq!(read_like_a_server(&bytes), (expected, line.len()));
        }

        #[test]
        fn v2_round_trips_with_any_tlvs_and_reading_stops_at_its_end(
            header in any_header(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..64),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut encoded = encode_v2(&header);
            let payload_len = u16::from_be_bytes([encoded[14], encoded[15]]) as usize + tlvs.len();
            encoded[14..16].copy_from_slice(&(payload_len as u16).to_be_bytes());
            encoded.extend_from_slice(&tlvs);
            let bytes = [&encoded[..], &tail].concat();
            prop_assert_eq!(read_like_a_server(&bytes), (header, encoded.len()));
        }

        #[test]
        fn parser_never_panics_and_never_asks_beyond_the_v2_bound(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(Parsed::Incomplete { at_least }) = parse(&bytes) {
                prop_assert!(at_least > bytes.len());
                prop_assert!(at_least <= V2_FIXED_LEN + V2_MAX_PAYLOAD);
            }
        }
    }
}
