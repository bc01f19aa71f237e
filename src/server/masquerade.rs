//! Which address a PASV reply names, so clients behind NAT (or a server behind NAT) get one they can
//! reach.
//!
//! Without configuration the reply carries the local address of the control connection. One
//! masquerade address replaces it for everyone; a per-network map
//! (`10.0.0.0/8=10.0.0.5,0.0.0.0/0=203.0.113.10`) picks by the client's address, the most specific
//! network first, so LAN and internet clients each get an address they can reach. EPSV replies carry
//! only a port and need none of this.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// The PASV address policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masquerade {
    /// For every client not matched by `map`.
    pub default: Option<Ipv4Addr>,
    /// Client network → address, most specific first.
    map: Vec<(IpNet, Ipv4Addr)>,
}

impl Masquerade {
    pub fn new(default: Option<Ipv4Addr>, mut map: Vec<(IpNet, Ipv4Addr)>) -> Self {
        map.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { default, map }
    }

    /// The address to put in a PASV reply for a client at `client`, if the local address of the
    /// control connection should not be used.
    pub fn address_for(&self, client: IpAddr) -> Option<Ipv4Addr> {
        let client = client.to_canonical();
        self.map
            .iter()
            .find(|(net, _)| net.contains(&client))
            .map(|&(_, addr)| addr)
            .or(self.default)
    }

    /// Parses a `CIDR=ADDR,...` map (addresses already resolved).
    pub fn parse_map(text: &str) -> Result<Vec<(IpNet, Ipv4Addr)>, String> {
        let mut map = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (net, addr) = entry.split_once('=').ok_or_else(|| {
                format!("masquerade map entry {entry:?} needs the form CIDR=ADDRESS, as in 10.0.0.0/8=10.0.0.5")
            })?;
            let net = IpNet::from_str(net.trim()).map_err(|_| {
                format!("{net:?} in the masquerade map is not a network such as 10.0.0.0/8")
            })?;
            let addr = Ipv4Addr::from_str(addr.trim()).map_err(|_| {
                format!("{addr:?} in the masquerade map is not an IPv4 address (PASV replies carry IPv4 only)")
            })?;
            map.push((net, addr));
        }
        Ok(map)
    }
}

impl fmt::Display for Masquerade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.default {
            Some(addr) => write!(f, "{addr}")?,
            None => f.write_str("local address")?,
        }
        for (net, addr) in &self.map {
            write!(f, ", {net}={addr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_network_wins_and_default_covers_the_rest() {
        let map = Masquerade::parse_map("0.0.0.0/0=203.0.113.10, 10.0.0.0/8=10.0.0.5").unwrap();
        let masquerade = Masquerade::new(Some("198.51.100.1".parse().unwrap()), map);
        let pick = |ip: &str| masquerade.address_for(ip.parse().unwrap());
        assert_eq!(pick("10.1.2.3"), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(pick("192.0.2.7"), Some("203.0.113.10".parse().unwrap()));
        // An IPv4 client seen on a dual-stack socket is still an IPv4 client.
        assert_eq!(pick("::ffff:10.9.9.9"), Some("10.0.0.5".parse().unwrap()));
        // No IPv4 network matches an IPv6 client: the default address applies.
        assert_eq!(pick("2001:db8::1"), Some("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn no_configuration_means_the_local_address() {
        assert_eq!(
            Masquerade::default().address_for("10.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn bad_map_entries_say_what_is_wrong() {
        assert!(
            Masquerade::parse_map("10.0.0.0/8")
                .unwrap_err()
                .contains("CIDR=ADDRESS")
        );
        assert!(
            Masquerade::parse_map("10.0.0.0/33=1.2.3.4")
                .unwrap_err()
                .contains("network")
        );
        assert!(
            Masquerade::parse_map("10.0.0.0/8=::1")
                .unwrap_err()
                .contains("IPv4")
        );
    }
}
