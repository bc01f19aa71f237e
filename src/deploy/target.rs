//! Where a deploy goes: `ftp[s]://USER@HOST[:PORT]/PATH`, parsed and printed back without any
//! password (passwords never travel in URLs here: they are read from standard input and kept
//! encrypted).
//!
//! Schemes: `ftp` (plain), `ftps` and `ftpes` (explicit FTPS, AUTH TLS), `ftps-implicit` (TLS
//! from the first byte, port 990 unless given).

use std::fmt;
use std::str::FromStr;

use crate::client::Security;

/// What must be escaped in a URL's user name (RFC 3986 `unreserved` stays as it is).
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A deploy target, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpTarget {
    pub security: Security,
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The directory on the server, absolute, without a trailing slash (except `/` itself).
    pub path: String,
}

impl FtpTarget {
    pub fn scheme(&self) -> &'static str {
        match self.security {
            Security::None => "ftp",
            Security::Explicit => "ftps",
            Security::Implicit => "ftps-implicit",
        }
    }

    fn default_port(security: Security) -> u16 {
        match security {
            Security::Implicit => 990,
            Security::None | Security::Explicit => 21,
        }
    }
}

impl fmt::Display for FtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = percent_encoding::utf8_percent_encode(&self.user, USERINFO);
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{user}@{host}", self.scheme())?;
        if self.port != Self::default_port(self.security) {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

impl FromStr for FtpTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str = "give the target as ftp[s]://USER@HOST[:PORT]/PATH";
        let url =
            url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e}); {SHAPE}"))?;
        let security = match url.scheme() {
            "ftp" => Security::None,
            "ftps" | "ftpes" => Security::Explicit,
            "ftps-implicit" => Security::Implicit,
            other => return Err(format!("unsupported scheme {other:?}; {SHAPE}")),
        };
        if url.password().is_some() {
            return Err(
                "the target URL holds a password; leave it out and pass it on standard input \
                 with --password-stdin"
                    .into(),
            );
        }
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8()
            .map_err(|_| "the user name in the target URL is not UTF-8".to_owned())?
            .into_owned();
        if user.is_empty() {
            return Err(format!("the target URL names no user; {SHAPE}"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(format!("the target URL names no host; {SHAPE}")),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("the target URL has a query or fragment; {SHAPE}"));
        }
        let path = percent_encoding::percent_decode_str(url.path())
            .decode_utf8()
            .map_err(|_| "the path in the target URL is not UTF-8".to_owned())?;
        let path = match path.trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        Ok(FtpTarget {
            port: url.port().unwrap_or(Self::default_port(security)),
            security,
            user,
            host,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let t: FtpTarget = "ftps://deploy@example.com:2121/www/site/".parse().unwrap();
        assert_eq!(t.security, Security::Explicit);
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port, t.path.as_str()),
            ("deploy", "example.com", 2121, "/www/site")
        );
        assert_eq!(t.to_string(), "ftps://deploy@example.com:2121/www/site");

        let t: FtpTarget = "ftp://a%40b@127.0.0.1".parse().unwrap();
        assert_eq!((t.user.as_str(), t.port, t.path.as_str()), ("a@b", 21, "/"));
        assert_eq!(t.to_string(), "ftp://a%40b@127.0.0.1/");
        assert_eq!(t.to_string().parse::<FtpTarget>().unwrap(), t);

        let t: FtpTarget = "ftps-implicit://u@[::1]/x".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 990));
        assert_eq!(t.to_string(), "ftps-implicit://u@[::1]/x");
        let t: FtpTarget = "ftpes://u@h/my%20site".parse().unwrap();
        assert_eq!(t.path, "/my site");
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (text, needle) in [
            ("http://u@h/", "scheme"),
            ("ftp://h/", "no user"),
            ("ftp://u:pw@h/", "password"),
            ("nonsense", "not a URL"),
            ("ftp://u@h/?x=1", "query"),
        ] {
            let err = text.parse::<FtpTarget>().unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
