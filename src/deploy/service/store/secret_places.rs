//! Where each stored secret of a service is sent, so that an edit which moves one of those
//! places needs the secret given again. Secrets are write-only (no page, answer or command shows
//! them); without this rule, whoever may edit a service could point its target or repository at
//! a host of their own and collect the stored password or token at the next validation.
//!
//! Pure: no database, no network.

use super::super::provider_api::{RepoPath, default_api_url};
use super::super::webhook::Provider;
use crate::client::Security;
use crate::deploy::engine::DeployTarget;

/// A secret that is sent somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentSecret {
    FtpPassword,
    ProviderToken,
}

impl SentSecret {
    pub fn describe(self) -> &'static str {
        match self {
            Self::FtpPassword => "FTP password",
            Self::ProviderToken => "provider token",
        }
    }
}

/// The settings of a service that decide where its secrets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPlaces {
    pub target: DeployTarget,
    pub repo_url: String,
    pub provider: Provider,
    pub api_url: Option<String>,
}

/// One move of a secret's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedSecret {
    pub secret: SentSecret,
    /// What changed: `target`, `repository` or `API root`.
    pub setting: &'static str,
    pub from: String,
    pub to: String,
}

/// Every secret whose destination differs between `before` and `after`. The FTP password goes
/// to the target's host, port and account, over its kind of connection (a move to plain FTP
/// would send it in clear); the provider token goes to the repository's origin (git's fetches)
/// and to the API root (webhook checks and registration).
pub fn moved_secrets(before: &SecretPlaces, after: &SecretPlaces) -> Vec<MovedSecret> {
    let mut moved = Vec::new();
    if ftp_place(&before.target) != ftp_place(&after.target) {
        moved.push(MovedSecret {
            secret: SentSecret::FtpPassword,
            setting: "target",
            from: before.target.display_url(),
            to: after.target.display_url(),
        });
    }
    let (old, new) = (origin(&before.repo_url), origin(&after.repo_url));
    if old != new {
        moved.push(MovedSecret {
            secret: SentSecret::ProviderToken,
            setting: "repository",
            from: old,
            to: new,
        });
    }
    let (old, new) = (api_origin(before), api_origin(after));
    if old != new {
        moved.push(MovedSecret {
            secret: SentSecret::ProviderToken,
            setting: "API root",
            from: old.unwrap_or_else(|| "none".to_owned()),
            to: new.unwrap_or_else(|| "none".to_owned()),
        });
    }
    moved
}

fn ftp_place(target: &DeployTarget) -> (Security, String, String, u16) {
    (
        target.security,
        target.user.clone(),
        target.host.to_ascii_lowercase(),
        target.port,
    )
}

/// `scheme://host:port` of a URL; for scp-like `user@host:path`, `ssh://user@host`; anything
/// else (a local path) stands for itself.
fn origin(location: &str) -> String {
    if let Ok(url) = url::Url::parse(location)
        && let Some(host) = url.host_str()
    {
        let port = url
            .port_or_known_default()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let user = match url.username() {
            "" => String::new(),
            user => format!("{user}@"),
        };
        return format!(
            "{}://{user}{}{port}",
            url.scheme(),
            host.to_ascii_lowercase()
        );
    }
    if let Some((account, _path)) = location.split_once(':')
        && account.contains('@')
        && !account.contains('/')
    {
        return format!("ssh://{}", account.to_ascii_lowercase());
    }
    location.to_owned()
}

/// The origin of the API the token is sent to: the stored root, else the provider's default for
/// the repository's host; `None` when there is no API (a plain git server).
fn api_origin(places: &SecretPlaces) -> Option<String> {
    let root = match &places.api_url {
        Some(root) => root.clone(),
        None => {
            let host = RepoPath::parse(&places.repo_url)
                .ok()
                .and_then(|(host, _)| host);
            default_api_url(places.provider, &places.repo_url, host.as_deref()).ok()?
        }
    };
    Some(origin(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(target: &str, repo: &str, api: Option<&str>) -> SecretPlaces {
        SecretPlaces {
            target: target.parse().unwrap(),
            repo_url: repo.to_owned(),
            provider: Provider::Github,
            api_url: api.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_host_port_account_or_a_clear_connection_moves_the_ftp_password() {
        let base = places(
            "ftps://deploy@ftp.example.com/www",
            "https://github.com/me/site.git",
            None,
        );
        for target in [
            "ftps://deploy@evil.example/www",
            "ftps://deploy@ftp.example.com:2121/www",
            "ftps://other@ftp.example.com/www",
            "ftp://deploy@ftp.example.com/www",
        ] {
            let after = SecretPlaces {
                target: target.parse().unwrap(),
                ..base.clone()
            };
            let moved = moved_secrets(&base, &after);
            assert_eq!(moved.len(), 1, "{target}");
            assert_eq!(moved[0].secret, SentSecret::FtpPassword, "{target}");
        }
        // Another directory on the same account, or the host's case, is the same place.
        for target in [
            "ftps://deploy@ftp.example.com/public",
            "ftps://deploy@FTP.example.com:21/www",
        ] {
            let after = SecretPlaces {
                target: target.parse().unwrap(),
                ..base.clone()
            };
            assert_eq!(moved_secrets(&base, &after), [], "{target}");
        }
    }

    #[test]
    fn a_new_repository_host_or_api_root_moves_the_token() {
        let base = places(
            "ftp://deploy@ftp.example.com/www",
            "https://github.com/me/site.git",
            None,
        );
        let other_repo_same_host = SecretPlaces {
            repo_url: "https://github.com/me/other.git".into(),
            ..base.clone()
        };
        assert_eq!(moved_secrets(&base, &other_repo_same_host), []);
        for (repo, api) in [
            ("http://github.com/me/site.git", None),
            ("https://evil.example/me/site.git", None),
            (
                "https://github.com/me/site.git",
                Some("https://evil.example/api/v3"),
            ),
        ] {
            let after = SecretPlaces {
                repo_url: repo.into(),
                api_url: api.map(str::to_owned),
                ..base.clone()
            };
            let moved = moved_secrets(&base, &after);
            assert!(!moved.is_empty(), "{repo} {api:?}");
            assert!(
                moved.iter().all(|m| m.secret == SentSecret::ProviderToken),
                "{repo} {api:?}"
            );
        }
        assert_eq!(origin("git@github.com:me/site.git"), "ssh://git@github.com");
    }
}
