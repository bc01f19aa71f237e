//! Data-connection addresses: PORT and EPRT arguments, PASV and EPSV replies.
//!
//! - PORT `h1,h2,h3,h4,p1,p2` and the PASV reply carry an IPv4 address and a port as six decimal
//!   bytes (RFC 959 §4.1.2, §4.2.2 code 227).
//! - EPRT `|af|address|port|` and the EPSV reply `(|||port|)` work for IPv4 and IPv6 (RFC 2428).
//!   The delimiter may be any printable ASCII character; `|` is the common one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use nom::Parser;
use nom::bytes::complete::{tag, take_till1};
use nom::character::complete::{u8 as dec_u8, u16 as dec_u16};
use nom::combinator::{all_consuming, map_res};
use nom::sequence::terminated;

/// Why an address argument or reply could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("expected six comma-separated numbers 0-255, as in PORT 127,0,0,1,4,1")]
    BadHostPort,
    #[error("expected |1|IPv4|port| or |2|IPv6|port|")]
    BadExtendedAddress,
    #[error("network protocol not supported; use 1 (IPv4) or 2 (IPv6)")]
    UnsupportedProtocol,
    #[error("the reply does not carry a data-connection address")]
    NoAddressInReply,
}

/// What follows EPSV (RFC 2428 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArgument {
    /// No argument: the protocol of the control connection.
    Any,
    /// `EPSV 1` or `EPSV 2`.
    Protocol(NetworkProtocol),
    /// `EPSV ALL`: from now on refuse every other data-connection command.
    All,
}

/// RFC 2428 address family numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkProtocol {
    Ipv4,
    Ipv6,
}

impl NetworkProtocol {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    fn number(self) -> u8 {
        match self {
            Self::Ipv4 => 1,
            Self::Ipv6 => 2,
        }
    }
}

fn six_numbers(input: &[u8]) -> nom::IResult<&[u8], [u8; 6]> {
    let comma = || tag(&b","[..]);
    let (rest, (a, _, b, _, c, _, d, _, e, _, f)) = (
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
    )
        .parse(input)?;
    Ok((rest, [a, b, c, d, e, f]))
}

fn host_port(numbers: [u8; 6]) -> SocketAddrV4 {
    let [a, b, c, d, p1, p2] = numbers;
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), u16::from_be_bytes([p1, p2]))
}

/// Parses the argument of PORT.
pub fn parse_port_argument(arg: &[u8]) -> Result<SocketAddrV4, AddressError> {
    all_consuming(six_numbers)
        .parse(arg.trim_ascii())
        .map(|(_, numbers)| host_port(numbers))
        .map_err(|_| AddressError::BadHostPort)
}

/// Formats the argument of PORT (for the client).
pub fn format_port_argument(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let [p1, p2] = addr.port().to_be_bytes();
    format!("{a},{b},{c},{d},{p1},{p2}")
}

/// Parses the argument of EPRT.
pub fn parse_eprt_argument(arg: &[u8]) -> Result<SocketAddr, AddressError> {
    let arg = arg.trim_ascii();
    let delimiter = *arg.first().ok_or(AddressError::BadExtendedAddress)?;
    if !(33..=126).contains(&delimiter) || delimiter.is_ascii_digit() {
        return Err(AddressError::BadExtendedAddress);
    }
    let d = [delimiter];
    let field = || take_till1(move |b| b == delimiter);
    let mut parser = all_consuming((
        tag(&d[..]),
        terminated(field(), tag(&d[..])),
        terminated(field(), tag(&d[..])),
        terminated(dec_u16, tag(&d[..])),
    ));
    let (_, (_, protocol, host, port)) = parser
        .parse(arg)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| AddressError::BadExtendedAddress)?;
    let host = std::str::from_utf8(host).map_err(|_| AddressError::BadExtendedAddress)?;
    let ip: IpAddr = match protocol {
        b"1" => host
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| AddressError::BadExtendedAddress)?,
        b"2" => host
            .parse::<std::net::Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| AddressError::BadExtendedAddress)?,
        _ => return Err(AddressError::UnsupportedProtocol),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Formats the argument of EPRT (for the client).
pub fn format_eprt_argument(addr: SocketAddr) -> String {
    let ip = addr.ip().to_canonical();
    let protocol = NetworkProtocol::of(ip).number();
    format!("|{protocol}|{ip}|{}|", addr.port())
}

/// Parses the argument of EPSV.
pub fn parse_epsv_argument(arg: Option<&[u8]>) -> Result<EpsvArgument, AddressError> {
    match arg.map(<[u8]>::trim_ascii) {
        None | Some(b"") => Ok(EpsvArgument::Any),
        Some(a) if a.eq_ignore_ascii_case(b"ALL") => Ok(EpsvArgument::All),
        Some(b"1") => Ok(EpsvArgument::Protocol(NetworkProtocol::Ipv4)),
        Some(b"2") => Ok(EpsvArgument::Protocol(NetworkProtocol::Ipv6)),
        Some(a) if a.iter().all(u8::is_ascii_digit) => Err(AddressError::UnsupportedProtocol),
        Some(_) => Err(AddressError::BadExtendedAddress),
    }
}

/// The text of a `227` reply.
pub fn format_pasv_reply(addr: SocketAddrV4) -> String {
    format!("Entering Passive Mode ({}).", format_port_argument(addr))
}

/// The text of a `229` reply.
pub fn format_epsv_reply(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Finds the address in a `227` reply text. Servers differ in wording and some drop the
/// parentheses, so the first run of six comma-separated numbers wins (RFC 1123 §4.1.2.6).
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, AddressError> {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .find_map(|i| six_numbers(&bytes[i..]).ok().map(|(_, n)| host_port(n)))
        .ok_or(AddressError::NoAddressInReply)
}

/// Finds the port in a `229` reply text: `(<d><d><d>port<d>)`.
pub fn parse_epsv_reply(text: &str) -> Result<u16, AddressError> {
    let open = text.find('(').ok_or(AddressError::NoAddressInReply)?;
    let inner = &text.as_bytes()[open + 1..];
    let delimiter = *inner.first().ok_or(AddressError::NoAddressInReply)?;
    let d = [delimiter];
    let mut parser = (
        tag(&d[..]),
        tag(&d[..]),
        tag(&d[..]),
        map_res(dec_u16, |p| if p == 0 { Err(()) } else { Ok(p) }),
        tag(&d[..]),
        tag(&b")"[..]),
    );
    parser
        .parse(inner)
        .map(|(_, (_, _, _, port, _, _))| port)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| AddressError::NoAddressInReply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn port_argument() {
        assert_eq!(
            parse_port_argument(b"127,0,0,1,4,1"),
            Ok("127.0.0.1:1025".parse().unwrap())
        );
        for bad in [
            &b"127,0,0,1,4"[..],
            b"127,0,0,1,4,256",
            b"127,0,0,1,4,1,2",
            b"a,b,c,d,e,f",
            b"",
        ] {
            assert_eq!(parse_port_argument(bad), Err(AddressError::BadHostPort));
        }
    }

    #[test]
    fn eprt_argument_ipv4_and_ipv6() {
        assert_eq!(
            parse_eprt_argument(b"|1|132.235.1.2|6275|"),
            Ok("132.235.1.2:6275".parse().unwrap())
        );
        assert_eq!(
            parse_eprt_argument(b"|2|1080::8:800:200C:417A|5282|"),
            Ok("[1080::8:800:200C:417A]:5282".parse().unwrap())
        );
        assert_eq!(
            parse_eprt_argument(b"!1!10.0.0.1!21!"),
            Ok("10.0.0.1:21".parse().unwrap())
        );
        assert_eq!(
            parse_eprt_argument(b"|3|x|1|"),
            Err(AddressError::UnsupportedProtocol)
        );
        assert_eq!(
            parse_eprt_argument(b"|1|::1|1|"),
            Err(AddressError::BadExtendedAddress)
        );
        assert_eq!(
            parse_eprt_argument(b"|1|1.2.3.4|70000|"),
            Err(AddressError::BadExtendedAddress)
        );
    }

    #[test]
    fn epsv_argument() {
        assert_eq!(parse_epsv_argument(None), Ok(EpsvArgument::Any));
        assert_eq!(parse_epsv_argument(Some(b"all")), Ok(EpsvArgument::All));
        assert_eq!(
            parse_epsv_argument(Some(b"2")),
            Ok(EpsvArgument::Protocol(NetworkProtocol::Ipv6))
        );
        assert_eq!(
            parse_epsv_argument(Some(b"3")),
            Err(AddressError::UnsupportedProtocol)
        );
    }

    #[test]
    fn pasv_reply_variants() {
        let want: SocketAddrV4 = "192.168.1.2:5001".parse().unwrap();
        assert_eq!(parse_pasv_reply(&format_pasv_reply(want)), Ok(want));
        assert_eq!(
            parse_pasv_reply("Entering Passive Mode 192,168,1,2,19,137"),
            Ok(want)
        );
        assert_eq!(parse_pasv_reply("=192,168,1,2,19,137"), Ok(want));
        assert_eq!(
            parse_pasv_reply("Entering Passive Mode"),
            Err(AddressError::NoAddressInReply)
        );
    }

    #[test]
    fn epsv_reply() {
        assert_eq!(parse_epsv_reply(&format_epsv_reply(40000)), Ok(40000));
        assert_eq!(parse_epsv_reply("Extended (!!!21!)"), Ok(21));
        assert_eq!(
            parse_epsv_reply("(|||0|)"),
            Err(AddressError::NoAddressInReply)
        );
        assert_eq!(
            parse_epsv_reply("no port"),
            Err(AddressError::NoAddressInReply)
        );
    }

    proptest! {
        #[test]
        fn port_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let addr = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            prop_assert_eq!(parse_port_argument(format_port_argument(addr).as_bytes()), Ok(addr));
            prop_assert_eq!(parse_pasv_reply(&format_pasv_reply(addr)), Ok(addr));
        }

        #[test]
        fn eprt_round_trip(ip in any::<std::net::IpAddr>(), port in any::<u16>()) {
            let ip = ip.to_canonical();
            let addr = SocketAddr::new(ip, port);
            prop_assert_eq!(parse_eprt_argument(format_eprt_argument(addr).as_bytes()), Ok(addr));
        }
    }
}
