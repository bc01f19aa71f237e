//! The deploy target URL: `ftp[s]://USER@HOST[:PORT]/PATH` → client settings and a remote root.
//! `ferry deploy push --to` and the deploy service's stored targets both go through it.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::client::{ClientConfig, Security, Verification};

use super::DeployError;

/// What must be escaped in the user name of a printed URL (RFC 3986 `unreserved` stays).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same for the path, where `/` separates segments.
const PATH: &AsciiSet = &USERINFO.remove(b'/');

/// A parsed `--to` URL. Its `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DeployTarget {
    pub security: Security,
    pub user: String,
    /// A password written into the URL (discouraged: other users can read command lines).
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    /// The deploy root relative to the login directory (RFC 1738 §3.2.2), without slashes at
    /// either end; empty for the login directory itself.
    pub path: String,
}

impl DeployTarget {
    /// Parses `ftp://`, `ftps://` (explicit TLS, `AUTH TLS`), `ftpes://` (the same) and
    /// `ftps-implicit://` URLs.
    pub fn parse(text: &str) -> Result<Self, DeployError> {
        let bad = |why: &str| {
            DeployError::Usage(format!(
                "bad --to URL {:?}: {why}; expected ftp[s]://USER@HOST[:PORT]/PATH",
                redact(text)
            ))
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let (security, default_port) = match url.scheme() {
            "ftp" => (Security::None, 21),
            "ftps" | "ftpes" => (Security::Explicit, 21),
            "ftps-implicit" => (Security::Implicit, 990),
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let user = decode(url.username());
        if user.is_empty() {
            return Err(bad("no user name"));
        }
        let password = url.password().map(decode);
        let path = decode(url.path()).trim_matches('/').to_owned();
        if path.split('/').any(|part| part == "..") {
            return Err(bad("the path may not contain .."));
        }
        Ok(Self {
            security,
            user,
            password,
            host,
            port: url.port().unwrap_or(default_port),
            path,
        })
    }

    /// The URL without any password: names the target in logs and keys its journal.
    pub fn display_url(&self) -> String {
        let scheme = match self.security {
            Security::None => "ftp",
            Security::Explicit => "ftps",
            Security::Implicit => "ftps-implicit",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{}@{host}:{}/{}",
            utf8_percent_encode(&self.user, USERINFO),
            self.port,
            utf8_percent_encode(&self.path, PATH)
        )
    }

    pub fn client_config(&self, password: String, verification: Verification) -> ClientConfig {
        let mut config = ClientConfig::new(&self.host, self.port, &self.user, password);
        config.security = self.security;
        config.verification = verification;
        config
    }
}

impl fmt::Debug for DeployTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployTarget")
            .field("url", &self.display_url())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The URL without its password; parses back to the same target.
impl fmt::Display for DeployTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

impl FromStr for DeployTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).map_err(|error| error.to_string())
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `text` with anything between `://user:` and `@` replaced, for error messages.
fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &text[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_give_security_port_user_and_path() {
        let t =
            DeployTarget::parse("ftps://deploy%40site@example.com:2121/www/my%20site/").unwrap();
        assert_eq!(t.security, Security::Explicit);
        assert_eq!(t.user, "deploy@site");
        assert_eq!(t.host, "example.com");
        assert_eq!(t.port, 2121);
        assert_eq!(t.path, "www/my site");
        assert_eq!(t.password, None);
        assert_eq!(
            t.display_url(),
            "ftps://deploy%40site@example.com:2121/www/my%20site"
        );
        assert_eq!(t.to_string().parse::<DeployTarget>().unwrap(), t);
        let t = DeployTarget::parse("ftps-implicit://u@[::1]/a%23b/c").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("::1", "a#b/c"));
        assert_eq!(t.to_string().parse::<DeployTarget>().unwrap(), t);

        let t = DeployTarget::parse("ftp://u:p%20w@127.0.0.1").unwrap();
        assert_eq!((t.port, t.path.as_str()), (21, ""));
        assert_eq!(t.password.as_deref(), Some("p w"));
        for shown in [format!("{t:?}"), t.to_string()] {
            assert!(
                !shown.contains("p w") && !shown.contains("p%20w"),
                "{shown}"
            );
        }
        assert_eq!(
            DeployTarget::parse("ftps-implicit://u@h/").unwrap().port,
            990
        );
    }

    #[test]
    fn bad_target_urls_are_usage_errors_that_hide_the_password() {
        for bad in ["http://u@h/", "ftp://h/", "not a url"] {
            let error = DeployTarget::parse(bad).unwrap_err();
            assert_eq!(error.exit_code(), DeployError::EXIT_USAGE, "{bad}");
        }
        let error = DeployTarget::parse("gopher://u:hunter2@h/").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
