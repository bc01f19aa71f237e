//! The git hosts' REST APIs for webhooks (reqwest): is the service's hook registered on its
//! repository, and registering it with the service's secret. One request shape per host, as
//! each documents it:
//!
//! | provider | list / create | auth | the hook's URL | push |
//! |---|---|---|---|---|
//! | GitHub | `/repos/{owner}/{repo}/hooks` | `Authorization: Bearer` | `config.url` | `events` has `push` |
//! | Gitea / Forgejo | `/repos/{owner}/{repo}/hooks` (type `gitea`) | `Authorization: token` | `config.url` | `events` has `push` |
//! | GitLab | `/projects/{url-encoded path}/hooks` | `PRIVATE-TOKEN` | `url` | `push_events` |
//! | Bitbucket Cloud | `/repositories/{workspace}/{repo}/hooks` | `Authorization: Bearer` (Basic for `user:app-password`) | `url` | `events` has `repo:push` |
//!
//! The API root (`https://api.github.com`, `https://HOST/api/v3` for GitHub Enterprise,
//! `https://HOST/api/v1` for Gitea, `https://HOST/api/v4` for GitLab,
//! `https://api.bitbucket.org/2.0`) is derived from the repository URL unless the service sets
//! its own. A hook is recognised by its URL ending in the service's `/hooks/KEY`, so the check
//! needs no public URL; registering one does.
//!
//! Redirects are followed only within the API root's origin (scheme, host and port): the
//! provider token rides in a header (GitLab's `PRIVATE-TOKEN` is one reqwest does not know to
//! strip), so a redirect to another host, another port or plain `http` is refused with
//! [`ProviderApiError::Redirected`] instead of handing the token over.

use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::model::{Secret, Service, ServiceSecrets};
use super::webhook::Provider;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Same-origin redirects followed at most (reqwest's own default is 10).
const MAX_REDIRECTS: usize = 5;

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum ProviderApiError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot reach the {provider} API at {url}: {message}")]
    Unreachable {
        provider: Provider,
        url: String,
        message: String,
    },
    #[error(
        "the {provider} API at {url} refused the provider token ({status}); store one that may \
         manage the repository's webhooks with: ferry deploy service edit NAME --token-stdin"
    )]
    Unauthorized {
        provider: Provider,
        url: String,
        status: u16,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("unexpected answer from {url}: {message}")]
    Format { url: String, message: String },
    #[error(
        "the {provider} API at {url} redirected to {to}, another origin; the provider token is \
         not sent there. If that is the host's real API, set it as the service's API root: \
         ferry deploy service edit NAME --api-url URL"
    )]
    Redirected {
        provider: Provider,
        url: String,
        /// The origin (`scheme://host:port`) the redirect pointed to, never its path or query.
        to: String,
    },
}

/// Why the redirect policy stopped a request; found again in reqwest's error by
/// [`redirect_refusal`].
#[derive(Debug, thiserror::Error)]
enum RedirectRefusal {
    #[error("redirected to another origin, {0}")]
    OtherOrigin(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
}

/// Follows a redirect only to the origin the request started at, and only a few times.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let started = attempt.previous().first().map(url::Url::origin);
        let next = attempt.url().origin();
        if started.as_ref() != Some(&next) {
            let to = next.ascii_serialization();
            attempt.error(RedirectRefusal::OtherOrigin(to))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefusal::TooMany)
        } else {
            attempt.follow()
        }
    })
}

/// The [`RedirectRefusal`] behind a reqwest error, if the redirect policy made it.
fn redirect_refusal(error: &reqwest::Error) -> Option<&RedirectRefusal> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<RedirectRefusal>() {
            return Some(refusal);
        }
        source = cause.source();
    }
    None
}

/// Where a repository lives on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath {
    /// Every path segment, without `.git`: `owner/repo`, or GitLab's `group/subgroup/project`.
    pub segments: Vec<String>,
}

impl RepoPath {
    /// Parses `https://host/owner/repo(.git)`, `ssh://git@host/owner/repo.git` and
    /// `git@host:owner/repo.git`: the host and the repository's path.
    pub fn parse(repo_url: &str) -> Result<(Option<String>, RepoPath), ProviderApiError> {
        let (host, path) = match url::Url::parse(repo_url) {
            Ok(url) if url.scheme() != "file" && url.host_str().is_some() => {
                let host = match (url.scheme(), url.port()) {
                    ("http" | "https", Some(port)) => {
                        format!("{}:{port}", url.host_str().unwrap_or_default())
                    }
                    _ => url.host_str().unwrap_or_default().to_owned(),
                };
                (Some(host), url.path().to_owned())
            }
            _ => match repo_url.split_once(':') {
                // scp-like `user@host:path`
                Some((user_host, path)) if !user_host.contains('/') && !path.starts_with("//") => {
                    let host = user_host.rsplit('@').next().unwrap_or_default();
                    (Some(host.to_owned()), path.to_owned())
                }
                _ => (None, repo_url.to_owned()),
            },
        };
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if segments.len() < 2 {
            return Err(ProviderApiError::Unsupported(format!(
                "cannot tell the owner and repository from {repo_url:?}; expected a URL such as \
                 https://HOST/OWNER/REPO.git"
            )));
        }
        Ok((host, RepoPath { segments }))
    }

    /// `owner/repo`: the last two segments (a host installed under a path keeps its prefix
    /// in the API root, not here).
    fn owner_repo(&self) -> (&str, &str) {
        let n = self.segments.len();
        (&self.segments[n - 2], &self.segments[n - 1])
    }

    pub fn display(&self) -> String {
        self.segments.join("/")
    }
}

/// The provider's API root for a repository on `host` (`None`: not a network URL).
pub fn default_api_url(
    provider: Provider,
    repo_url: &str,
    host: Option<&str>,
) -> Result<String, ProviderApiError> {
    let scheme = if repo_url.starts_with("http://") {
        "http"
    } else {
        "https"
    };
    let host = || {
        host.map(str::to_owned).ok_or_else(|| {
            ProviderApiError::Unsupported(format!(
                "{repo_url:?} names no host; set the API root with --api-url"
            ))
        })
    };
    Ok(match provider {
        Provider::Github => match host()?.as_str() {
            "github.com" | "www.github.com" => "https://api.github.com".to_owned(),
            other => format!("{scheme}://{other}/api/v3"),
        },
        Provider::Gitea => format!("{scheme}://{}/api/v1", host()?),
        Provider::Gitlab => format!("{scheme}://{}/api/v4", host()?),
        Provider::Bitbucket => "https://api.bitbucket.org/2.0".to_owned(),
        Provider::Git => {
            return Err(ProviderApiError::Unsupported(
                "a plain git server has no webhook API".to_owned(),
            ));
        }
    })
}

/// A webhook as the host lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteHook {
    /// GitHub's, Gitea's and GitLab's number, Bitbucket's `{uuid}`.
    pub id: String,
    pub url: String,
    pub active: bool,
    /// It is sent on pushes.
    pub push: bool,
}

/// One repository's webhooks through its host's API.
pub struct ProviderApi {
    provider: Provider,
    api_url: String,
    repo: RepoPath,
    token: Secret,
    client: reqwest::Client,
}

impl std::fmt::Debug for ProviderApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderApi")
            .field("provider", &self.provider)
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl ProviderApi {
    /// The API of `repo_url`'s host, at `api_url` when given (else the provider's default).
    pub fn new(
        provider: Provider,
        repo_url: &str,
        api_url: Option<&str>,
        token: Secret,
    ) -> Result<Self, ProviderApiError> {
        if provider == Provider::Git {
            return Err(ProviderApiError::Unsupported(
                "a plain git server has no webhook API".to_owned(),
            ));
        }
        let (host, repo) = RepoPath::parse(repo_url)?;
        let api_url = match api_url {
            Some(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
            _ => default_api_url(provider, repo_url, host.as_deref())?,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| ProviderApiError::Unreachable {
                provider,
                url: api_url.clone(),
                message: e.to_string(),
            })?;
        Ok(ProviderApi {
            provider,
            api_url,
            repo,
            token,
            client,
        })
    }

    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub fn repo(&self) -> &RepoPath {
        &self.repo
    }

    /// The collection URL of the repository's hooks.
    pub fn hooks_url(&self) -> String {
        let (owner, repo) = self.repo.owner_repo();
        let enc = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        match self.provider {
            Provider::Github | Provider::Gitea | Provider::Git => {
                format!("{}/repos/{}/{}/hooks", self.api_url, enc(owner), enc(repo))
            }
            Provider::Gitlab => format!(
                "{}/projects/{}/hooks",
                self.api_url,
                enc(&self.repo.display())
            ),
            Provider::Bitbucket => format!(
                "{}/repositories/{}/{}/hooks",
                self.api_url,
                enc(owner),
                enc(repo)
            ),
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let token = self.token.expose();
        match self.provider {
            Provider::Github => request
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            Provider::Gitea | Provider::Git => {
                request.header("Authorization", format!("token {token}"))
            }
            Provider::Gitlab => request.header("PRIVATE-TOKEN", token),
            Provider::Bitbucket => match token.split_once(':') {
                Some(_) => request.header(
                    "Authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(token)
                    ),
                ),
                None => request.bearer_auth(token),
            },
        }
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        body: Option<Value>,
    ) -> Result<Value, ProviderApiError> {
        let mut request = match method {
            "POST" => self.client.post(&url),
            _ => self.client.get(&url),
        };
        request = self.authorize(request);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| ProviderApiError::Unreachable {
            provider: self.provider,
            url: url.clone(),
            message: e.to_string(),
        };
        let response = request
            .send()
            .await
            .map_err(|e| match redirect_refusal(&e) {
                Some(RedirectRefusal::OtherOrigin(to)) => ProviderApiError::Redirected {
                    provider: self.provider,
                    url: url.clone(),
                    to: to.clone(),
                },
                Some(refusal @ RedirectRefusal::TooMany) => ProviderApiError::Unreachable {
                    provider: self.provider,
                    url: url.clone(),
                    message: refusal.to_string(),
                },
                None => unreachable(e),
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        if status == 401 || status == 403 {
            return Err(ProviderApiError::Unauthorized {
                provider: self.provider,
                url,
                status,
            });
        }
        if !(200..300).contains(&status) {
            let mut body = text.trim().to_owned();
            body.truncate(500);
            return Err(ProviderApiError::Status {
                method,
                url,
                status,
                body,
            });
        }
        serde_json::from_str(&text).map_err(|e| ProviderApiError::Format {
            url,
            message: format!("not JSON: {e}"),
        })
    }

    /// Every webhook of the repository (the first 100: more is not a deploy target's setup).
    pub async fn hooks(&self) -> Result<Vec<RemoteHook>, ProviderApiError> {
        let page = match self.provider {
            Provider::Bitbucket => "pagelen=100",
            Provider::Gitea => "limit=50",
            _ => "per_page=100",
        };
        let url = format!("{}?{page}", self.hooks_url());
        let value = self.send("GET", url.clone(), None).await?;
        let list = match self.provider {
            Provider::Bitbucket => value.get("values").cloned().unwrap_or(Value::Null),
            _ => value,
        };
        let Value::Array(items) = list else {
            return Err(ProviderApiError::Format {
                url,
                message: "expected a list of hooks".to_owned(),
            });
        };
        items
            .iter()
            .map(|item| self.read_hook(item, &url))
            .collect()
    }

    /// The hook whose URL ends with `hook_path` (`/hooks/KEY`), if registered.
    pub async fn find_hook(&self, hook_path: &str) -> Result<Option<RemoteHook>, ProviderApiError> {
        Ok(self
            .hooks()
            .await?
            .into_iter()
            .find(|hook| hook.url.trim_end_matches('/').ends_with(hook_path)))
    }

    /// Registers a push webhook to `url`, signed with `secret` (GitLab: sent as its token).
    pub async fn add_hook(
        &self,
        url: &str,
        secret: Option<&Secret>,
    ) -> Result<RemoteHook, ProviderApiError> {
        let secret = secret.map(Secret::expose);
        let body = match self.provider {
            Provider::Github => {
                let mut config = json!({ "url": url, "content_type": "json", "insecure_ssl": "0" });
                if let Some(secret) = secret {
                    config["secret"] = json!(secret);
                }
                json!({ "name": "web", "active": true, "events": ["push"], "config": config })
            }
            Provider::Gitea | Provider::Git => {
                let mut config = json!({ "url": url, "content_type": "json" });
                if let Some(secret) = secret {
                    config["secret"] = json!(secret);
                }
                json!({
                    "type": "gitea",
                    "active": true,
                    "events": ["push"],
                    "branch_filter": "*",
                    "config": config,
                })
            }
            Provider::Gitlab => {
                let mut body = json!({
                    "url": url,
                    "push_events": true,
                    "tag_push_events": false,
                    "enable_ssl_verification": true,
                });
                if let Some(secret) = secret {
                    body["token"] = json!(secret);
                }
                body
            }
            Provider::Bitbucket => {
                let mut body = json!({
                    "description": "ferry deploy",
                    "url": url,
                    "active": true,
                    "events": ["repo:push"],
                });
                if let Some(secret) = secret {
                    body["secret"] = json!(secret);
                }
                body
            }
        };
        let target = self.hooks_url();
        let value = self.send("POST", target.clone(), Some(body)).await?;
        self.read_hook(&value, &target)
    }

    fn read_hook(&self, item: &Value, url: &str) -> Result<RemoteHook, ProviderApiError> {
        let id = match (item.get("id"), item.get("uuid")) {
            (Some(Value::Number(n)), _) => n.to_string(),
            (Some(Value::String(s)), _) | (_, Some(Value::String(s))) => s.clone(),
            _ => String::new(),
        };
        let hook_url = match self.provider {
            Provider::Github | Provider::Gitea | Provider::Git => item.pointer("/config/url"),
            Provider::Gitlab | Provider::Bitbucket => item.get("url"),
        }
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderApiError::Format {
            url: url.to_owned(),
            message: format!("a hook without a URL: {item}"),
        })?
        .to_owned();
        let events_have = |name: &str| {
            item.get("events")
                .and_then(Value::as_array)
                .is_some_and(|events| events.iter().any(|e| e.as_str() == Some(name)))
        };
        let push = match self.provider {
            Provider::Gitlab => item
                .get("push_events")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            Provider::Bitbucket => events_have("repo:push"),
            _ => events_have("push"),
        };
        Ok(RemoteHook {
            id,
            url: hook_url,
            // GitLab lists no `active`: its hooks are active unless disabled by failures.
            active: item.get("active").and_then(Value::as_bool).unwrap_or(true),
            push,
        })
    }
}

/// What [`ensure_hook`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// The hook was added now (else it was there already).
    pub created: bool,
    pub hook: RemoteHook,
    /// The repository, as `owner/repo`.
    pub repo: String,
}

/// Registers the service's webhook (`PUBLIC_URL/hooks/KEY`, with the service's secret) unless
/// the repository has one to its `/hooks/KEY` already.
pub async fn ensure_hook(
    service: &Service,
    secrets: &ServiceSecrets,
    public_url: &str,
) -> Result<HookOutcome, ProviderApiError> {
    let public = url::Url::parse(public_url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            ProviderApiError::Unsupported(format!(
                "the public URL {public_url:?} is not an http(s) URL; give the address git hosts \
                 reach ferry deploy serve on, as in https://deploy.example.com"
            ))
        })?;
    let token = secrets.provider_token.clone().ok_or_else(|| {
        ProviderApiError::Unsupported(format!(
            "service {} has no provider token; store one that may manage webhooks with: ferry \
             deploy service edit {} --token-stdin",
            service.name, service.name
        ))
    })?;
    let api = ProviderApi::new(
        service.provider,
        &service.repo_url,
        service.api_url.as_deref(),
        token,
    )?;
    let repo = api.repo().display();
    if let Some(hook) = api.find_hook(&service.hook_path()).await? {
        return Ok(HookOutcome {
            created: false,
            hook,
            repo,
        });
    }
    let url = public_hook_url(public.as_str(), &service.hook_path());
    let hook = api.add_hook(&url, secrets.webhook_secret.as_ref()).await?;
    tracing::info!(
        service = service.name,
        repo,
        hook = hook.id,
        "webhook registered"
    );
    Ok(HookOutcome {
        created: true,
        hook,
        repo,
    })
}

/// The URL a service's webhook must point to: the public root plus `/hooks/KEY`.
pub fn public_hook_url(public_url: &str, hook_path: &str) -> String {
    format!("{}{hook_path}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(provider: Provider, repo: &str, api_url: Option<&str>) -> ProviderApi {
        ProviderApi::new(provider, repo, api_url, Secret::new("t")).unwrap()
    }

    #[test]
    fn owner_and_repository_come_from_every_url_form() {
        for (url, host, path) in [
            (
                "https://github.com/octocat/Hello-World.git",
                "github.com",
                "octocat/Hello-World",
            ),
            (
                "git@github.com:octocat/site.git",
                "github.com",
                "octocat/site",
            ),
            (
                "ssh://git@gitlab.example.com:2222/group/sub/project.git",
                "gitlab.example.com",
                "group/sub/project",
            ),
            (
                "http://127.0.0.1:3000/gitea/webhooks/",
                "127.0.0.1:3000",
                "gitea/webhooks",
            ),
        ] {
            let (h, p) = RepoPath::parse(url).unwrap();
            assert_eq!(
                (h.as_deref(), p.display().as_str()),
                (Some(host), path),
                "{url}"
            );
        }
        // A local path has no host: no default API root for it.
        let (host, _) = RepoPath::parse("/srv/git/site.git").unwrap();
        assert_eq!(host, None);
        assert!(default_api_url(Provider::Github, "/srv/git/site.git", None).is_err());
        assert!(RepoPath::parse("https://github.com/lonely").is_err());
    }

    #[test]
    fn default_api_roots_and_hook_collections_per_provider() {
        for (provider, repo, api_url, hooks) in [
            (
                Provider::Github,
                "https://github.com/octocat/Hello-World.git",
                None,
                "https://api.github.com/repos/octocat/Hello-World/hooks",
            ),
            (
                Provider::Github,
                "https://ghe.example.com/o/r.git",
                None,
                "https://ghe.example.com/api/v3/repos/o/r/hooks",
            ),
            (
                Provider::Gitea,
                "https://codeberg.org/o/r.git",
                None,
                "https://codeberg.org/api/v1/repos/o/r/hooks",
            ),
            (
                Provider::Gitlab,
                "git@gitlab.com:group/sub/project.git",
                None,
                "https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/hooks",
            ),
            (
                Provider::Bitbucket,
                "https://bitbucket.org/team/site.git",
                None,
                "https://api.bitbucket.org/2.0/repositories/team/site/hooks",
            ),
            (
                Provider::Gitea,
                "https://git.example.com/o/r.git",
                Some("http://127.0.0.1:9/api/v1/"),
                "http://127.0.0.1:9/api/v1/repos/o/r/hooks",
            ),
        ] {
            assert_eq!(api(provider, repo, api_url).hooks_url(), hooks, "{repo}");
        }
        assert!(matches!(
            ProviderApi::new(Provider::Git, "https://h/o/r", None, Secret::new("t")),
            Err(ProviderApiError::Unsupported(_))
        ));
    }

    #[test]
    fn hooks_are_read_from_each_documented_shape() {
        let github = api(Provider::Github, "https://github.com/o/r", None);
        let hook = github
            .read_hook(
                &json!({"type": "Repository", "id": 12345678, "name": "web", "active": true,
                        "events": ["push", "pull_request"],
                        "config": {"content_type": "json", "insecure_ssl": "0",
                                   "url": "https://example.com/webhook"}}),
                "u",
            )
            .unwrap();
        assert_eq!(
            hook,
            RemoteHook {
                id: "12345678".into(),
                url: "https://example.com/webhook".into(),
                active: true,
                push: true
            }
        );
        let gitlab = api(Provider::Gitlab, "https://gitlab.com/g/p", None);
        let hook = gitlab
            .read_hook(
                &json!({"id": 1, "url": "http://example.com/hook", "push_events": false}),
                "u",
            )
            .unwrap();
        assert!(hook.active && !hook.push);
        let bitbucket = api(Provider::Bitbucket, "https://bitbucket.org/t/s", None);
        let hook = bitbucket
            .read_hook(
                &json!({"uuid": "{a-b}", "url": "https://d.example/hooks/K", "active": false,
                        "events": ["repo:push"]}),
                "u",
            )
            .unwrap();
        assert_eq!(
            (hook.id.as_str(), hook.active, hook.push),
            ("{a-b}", false, true)
        );
        assert!(github.read_hook(&json!({"id": 1}), "u").is_err());
    }

    #[test]
    fn public_hook_url_joins_without_a_double_slash() {
        assert_eq!(
            public_hook_url("https://deploy.example.com/", "/hooks/K"),
            "https://deploy.example.com/hooks/K"
        );
        assert_eq!(
            public_hook_url("https://example.com/ferry", "/hooks/K"),
            "https://example.com/ferry/hooks/K"
        );
    }
}
