//! Where an account may log in from: a list of client networks (CIDRs), and a list of the
//! virtual hosts (RFC 7151 HOST names) it is served on, each kept with the account, or with its
//! group for the accounts that have none of their own.
//!
//! Both are checked at USER, before any password is read (see
//! `crate::server::commands::login`), and refused logins look exactly like wrong passwords.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The most networks one list may hold: a list is read at every login.
const MAX_NETWORKS: usize = 256;

/// A non-empty list of networks; an address alone is a network of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Whether a client at `ip` may log in. An IPv4 client reached over an IPv6 socket
    /// (`::ffff:192.0.2.1`) is judged by its IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(&ip))
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

impl FromStr for AllowedNetworks {
    type Err = String;

    /// `10.0.0.0/8,192.0.2.7, 2001:db8::/32`: commas, spaces or both between entries.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut networks = Vec::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "{entry:?} is not a network: give CIDRs such as 10.0.0.0/8 or \
                             2001:db8::/32, or single addresses, separated by commas"
                        ));
                    }
                },
            };
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        if networks.is_empty() {
            return Err(
                "the list of allowed networks is empty; give at least one CIDR, or leave the \
                 setting out to allow any network"
                    .to_owned(),
            );
        }
        if networks.len() > MAX_NETWORKS {
            return Err(format!(
                "{} networks is more than the {MAX_NETWORKS} a list may hold; merge them into \
                 wider CIDRs",
                networks.len()
            ));
        }
        Ok(Self(networks))
    }
}

impl fmt::Display for AllowedNetworks {
    /// The stored form: the networks separated by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}

/// The virtual hosts an account is served on: lower-cased names, the first one the account's
/// home site (used when a client sends no HOST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList(Vec<String>);

impl HostList {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|host| host.eq_ignore_ascii_case(name))
    }

    /// The first name: the site of a login that did not choose one.
    pub fn first(&self) -> &str {
        &self.0[0]
    }
}

impl FromStr for HostList {
    type Err = String;

    /// `www.example.com,example.org`: host names as HOST sends them, separated by commas.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut hosts: Vec<String> = Vec::new();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let name = crate::protocol::command::host_name(entry.as_bytes())
                .map_err(|_| {
                    format!("{entry:?} is not a host name: give names such as ftp.example.com, separated by commas")
                })?
                .to_ascii_lowercase();
            if !hosts.contains(&name) {
                hosts.push(name);
            }
        }
        if hosts.is_empty() {
            return Err(
                "the list of hosts is empty; give at least one name, or leave the setting out to \
                 allow every host"
                    .to_owned(),
            );
        }
        Ok(Self(hosts))
    }
}

impl fmt::Display for HostList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_are_lower_cased_checked_and_keep_their_order() {
        let hosts: HostList = "WWW.Example.com, example.org.,www.example.com"
            .parse()
            .unwrap();
        assert_eq!(hosts.to_string(), "www.example.com,example.org");
        assert_eq!(hosts.first(), "www.example.com");
        assert!(hosts.contains("EXAMPLE.ORG"));
        assert!(!hosts.contains("example.net"));
        let error = "exa mple,-bad".parse::<HostList>().unwrap_err();
        assert!(error.contains("-bad") || error.contains("exa"), "{error}");
        assert!("".parse::<HostList>().unwrap_err().contains("empty"));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_and_single_addresses_are_matched() {
        let list: AllowedNetworks = "10.0.0.0/8, 192.0.2.7,2001:db8::/32".parse().unwrap();
        assert!(list.allows(ip("10.1.2.3")));
        assert!(list.allows(ip("192.0.2.7")));
        assert!(!list.allows(ip("192.0.2.8")));
        assert!(list.allows(ip("2001:db8::1")));
        assert!(!list.allows(ip("2001:db9::1")));
        // An IPv4 client on an IPv6 socket is still the IPv4 client.
        assert!(list.allows(ip("::ffff:10.9.9.9")));
        assert_eq!(list.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
    }

    #[test]
    fn host_bits_are_dropped_and_duplicates_merged() {
        let list: AllowedNetworks = "127.0.0.1/8,127.0.0.0/8".parse().unwrap();
        assert_eq!(list.to_string(), "127.0.0.0/8");
        let round_trip: AllowedNetworks = list.to_string().parse().unwrap();
        assert_eq!(round_trip, list);
    }

    #[test]
    fn mistakes_say_what_to_write() {
        let error = "10.0.0.0/33".parse::<AllowedNetworks>().unwrap_err();
        assert!(
            error.contains("10.0.0.0/33") && error.contains("CIDR"),
            "{error}"
        );
        let error = " , ".parse::<AllowedNetworks>().unwrap_err();
        assert!(error.contains("empty"), "{error}");
        let many: Vec<String> = (0..300)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        let error = many.join(",").parse::<AllowedNetworks>().unwrap_err();
        assert!(error.contains("wider"), "{error}");
    }
}
