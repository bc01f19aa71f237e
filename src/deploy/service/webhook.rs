//! Push webhooks from git hosts, pure: raw body and headers in, a verified [`WebhookEvent`] out.
//!
//! The order is fixed: size limit, then the signature over the raw body (constant time), and
//! only then parsing — a request that fails verification is never parsed. Each provider's
//! documented format:
//!
//! | provider | authenticity | event header | delivery id |
//! |---|---|---|---|
//! | GitHub | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>` | `X-GitHub-Event` | `X-GitHub-Delivery` |
//! | Gitea / Forgejo | `X-Gitea-Signature` / `X-Forgejo-Signature` (bare hex), or its GitHub-style `X-Hub-Signature-256` | `X-Gitea-Event`, `X-Forgejo-Event`, `X-Gogs-Event`, `X-GitHub-Event` | `X-Gitea-Delivery`, ... |
//! | GitLab | `X-Gitlab-Token`: the secret itself | `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`) | `Idempotency-Key`, else `X-Gitlab-Event-UUID` |
//! | Bitbucket Cloud | `X-Hub-Signature: sha256=<hex HMAC-SHA256>` | `X-Event-Key` (`repo:push`, `diagnostics:ping`) | `X-Request-UUID` |
//!
//! A service without a webhook secret is authenticated by its URL key alone (the only choice
//! Bitbucket offered before it signed requests); the router has checked that key before this
//! module runs. No I/O and no clock here: the web layer feeds bytes in and acts on the values.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The largest body accepted by default. GitHub caps its payloads at 25 MB; a push of a few
/// thousand commits stays far below this.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The all-zero object id a host sends as `after` when a ref is deleted (and as `before` when
/// one is created).
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Which git host sends a service's webhooks (and so which format they use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Github,
    Bitbucket,
    Gitea,
    Gitlab,
    /// A plain git server with no webhooks of its own; a hook script may post GitHub's format.
    Git,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Github,
        Provider::Bitbucket,
        Provider::Gitea,
        Provider::Gitlab,
        Provider::Git,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Bitbucket => "bitbucket",
            Provider::Gitea => "gitea",
            Provider::Gitlab => "gitlab",
            Provider::Git => "git",
        }
    }
}

impl Provider {
    /// The provider a repository URL's host suggests (`git` when it is none of the big hosts).
    pub fn guess_from_repo(repo: &str) -> Provider {
        let host = url::Url::parse(repo)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            // scp-like `git@host:owner/repo.git`
            .or_else(|| {
                repo.split_once(':')
                    .map(|(user_host, _)| user_host.rsplit('@').next().unwrap_or("").to_owned())
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        match host.as_str() {
            "github.com" => Provider::Github,
            "gitlab.com" => Provider::Gitlab,
            "bitbucket.org" => Provider::Bitbucket,
            "codeberg.org" | "gitea.com" => Provider::Gitea,
            _ => Provider::Git,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Ok(Provider::Github),
            "bitbucket" => Ok(Provider::Bitbucket),
            // Forgejo is a Gitea fork and keeps its webhook format.
            "gitea" | "forgejo" => Ok(Provider::Gitea),
            "gitlab" => Ok(Provider::Gitlab),
            "git" => Ok(Provider::Git),
            other => Err(format!(
                "unknown provider {other:?}; use one of github, bitbucket, gitea, gitlab, git"
            )),
        }
    }
}

/// Why a webhook request was refused; [`WebhookError::status`] is the HTTP answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the body has {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the request has no {header} header, but the service has a webhook secret")]
    MissingSignature { header: &'static str },
    #[error("the {header} header does not match the body signed with the service's secret")]
    BadSignature { header: &'static str },
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            WebhookError::MissingSignature { .. } | WebhookError::BadSignature { .. } => 401,
            WebhookError::Malformed(_) => 400,
        }
    }
}

/// A request's headers, looked up by case-insensitive name (HTTP/2 lowercases them all).
#[derive(Debug, Clone, Default)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new<N: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        Headers {
            entries: pairs
                .into_iter()
                .map(|(n, v)| {
                    (
                        n.as_ref().to_ascii_lowercase(),
                        v.as_ref().trim().to_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn first_of(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names
            .iter()
            .find_map(|name| self.get(name).map(|value| (*name, value)))
    }
}

/// One commit of a push, as the host reported it (for the log and the notifications only: the
/// deploy plan comes from the repository, never from this list, which hosts truncate).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushCommit {
    pub id: String,
    pub message: String,
    pub author: String,
    pub author_email: Option<String>,
    pub timestamp: String,
}

impl From<crate::deploy::engine::git::CommitInfo> for PushCommit {
    fn from(commit: crate::deploy::engine::git::CommitInfo) -> Self {
        Self {
            id: commit.id,
            message: commit.message,
            author: commit.author,
            author_email: commit.author_email,
            timestamp: commit.timestamp,
        }
    }
}

/// One ref update, whatever the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub provider: Provider,
    pub delivery_id: String,
    /// The full ref, as in `refs/heads/main`.
    pub git_ref: String,
    /// The branch name when the ref is under `refs/heads/`.
    pub branch: Option<String>,
    pub before: String,
    pub after: String,
    pub is_tag: bool,
    /// A branch was deleted (`after` is all zeros): never a reason to delete a site. A deleted
    /// tag is a tag push with a zero `after`, not a branch deletion.
    pub is_branch_deletion: bool,
    pub pusher: String,
    /// The pusher's email address, when the provider sends one (Bitbucket does not).
    pub pusher_email: Option<String>,
    /// Oldest first.
    pub commits: Vec<PushCommit>,
}

/// What a verified request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// GitHub's `ping`, Bitbucket's `diagnostics:ping`, Gitea's "Test delivery" (a push whose
    /// `before` equals `after`, which no real push sends).
    Ping {
        provider: Provider,
        delivery_id: String,
    },
    /// Ref updates: one for GitHub, Gitea and GitLab; Bitbucket may put several in one delivery.
    Push(Vec<PushEvent>),
    /// A verified event this service does not act on (issues, releases, ...).
    Ignored {
        provider: Provider,
        delivery_id: String,
        event: String,
    },
}

/// The hex HMAC-SHA256 of `body` under `secret`, as GitHub, Gitea and Bitbucket compute it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Size limit, signature, then parse: the whole path from request to event.
pub fn receive(
    provider: Provider,
    headers: &Headers,
    body: &[u8],
    secret: Option<&[u8]>,
    max_body_bytes: usize,
) -> Result<WebhookEvent, WebhookError> {
    if body.len() > max_body_bytes {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: max_body_bytes,
        });
    }
    verify(provider, headers, body, secret)?;
    parse(provider, headers, body)
}

/// Checks the request's signature (or token) against `secret`, over the raw body, in constant
/// time. Without a secret there is nothing to check: the URL key authenticated the request.
pub fn verify(
    provider: Provider,
    headers: &Headers,
    body: &[u8],
    secret: Option<&[u8]>,
) -> Result<(), WebhookError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    match provider {
        Provider::Github | Provider::Git => verify_hmac(
            headers,
            &["X-Hub-Signature-256"],
            Some("sha256="),
            body,
            secret,
        ),
        Provider::Bitbucket => {
            verify_hmac(headers, &["X-Hub-Signature"], Some("sha256="), body, secret)
        }
        Provider::Gitea => {
            // Gitea and Forgejo sign the JSON payload, which a form-encoded delivery carries in
            // its `payload` field: that field's value is what the signature covers there.
            let form_payload = is_form(headers).then(|| form_payload(body)).flatten();
            let body = form_payload.as_deref().map_or(body, str::as_bytes);
            // Bare hex in their own headers, `sha256=` in GitHub's.
            if headers
                .first_of(&["X-Gitea-Signature", "X-Forgejo-Signature"])
                .is_some()
            {
                verify_hmac(
                    headers,
                    &["X-Gitea-Signature", "X-Forgejo-Signature"],
                    None,
                    body,
                    secret,
                )
            } else {
                verify_hmac(
                    headers,
                    &["X-Hub-Signature-256"],
                    Some("sha256="),
                    body,
                    secret,
                )
            }
        }
        Provider::Gitlab => {
            const HEADER: &str = "X-Gitlab-Token";
            let token = headers
                .get(HEADER)
                .ok_or(WebhookError::MissingSignature { header: HEADER })?;
            // Compare digests, so neither the length nor a prefix of the secret leaks.
            let equal = Sha256::digest(token.as_bytes()).ct_eq(&Sha256::digest(secret));
            if bool::from(equal) {
                Ok(())
            } else {
                Err(WebhookError::BadSignature { header: HEADER })
            }
        }
    }
}

fn verify_hmac(
    headers: &Headers,
    names: &[&'static str],
    prefix: Option<&str>,
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    let (header, value) = headers
        .first_of(names)
        .ok_or(WebhookError::MissingSignature { header: names[0] })?;
    let bad = WebhookError::BadSignature { header };
    let hex_digest = match prefix {
        Some(prefix) => value.strip_prefix(prefix).ok_or(bad.clone())?,
        None => value,
    };
    let claimed = hex::decode(hex_digest).map_err(|_| bad.clone())?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&claimed).map_err(|_| bad)
}

/// Parses a request that [`verify`] accepted.
pub fn parse(
    provider: Provider,
    headers: &Headers,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    let event = parse_unchecked(provider, headers, body)?;
    if let WebhookEvent::Push(pushes) = &event {
        pushes.iter().try_for_each(check_push)?;
    }
    Ok(event)
}

/// A push names its commits by full object id and its branch by a name git accepts. Nothing
/// from a webhook is ever used as a revision (a push deploys its branch's tip), but a payload
/// that says `main~1` or `../pull/1/head` is not from a git host and is refused as such.
fn check_push(push: &PushEvent) -> Result<(), WebhookError> {
    for (field, id) in [("before", &push.before), ("after", &push.after)] {
        if !is_object_id(id) {
            return Err(WebhookError::Malformed(format!(
                "{field} is {id:?}, not a full commit id (40 or 64 hex digits)"
            )));
        }
    }
    if let Some(branch) = &push.branch
        && !is_branch_name(branch)
    {
        return Err(WebhookError::Malformed(format!(
            "{:?} is not a branch name git accepts",
            push.git_ref
        )));
    }
    Ok(())
}

/// A SHA-1 or SHA-256 object id in lowercase or uppercase hex.
fn is_object_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `git check-ref-format --branch` rules: no control characters, space, `~ ^ : ? * [ \`, no
/// `..` or `@{`, no empty, `.`-leading or `.lock`-ending component, not `@`, not `-`-leading.
fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && name != "@"
        && !name.starts_with('-')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

fn parse_unchecked(
    provider: Provider,
    headers: &Headers,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    let delivery_id = delivery_id(provider, headers, body);
    let event = event_name(provider, headers);
    // Pings and ignored events are answered without reading the body.
    let json = || json_body(headers, body);
    match provider {
        Provider::Github | Provider::Git => match event.as_deref() {
            Some("ping") => Ok(WebhookEvent::Ping {
                provider,
                delivery_id,
            }),
            Some("push") | None => github_push(provider, delivery_id, &json()?),
            Some(other) => Ok(ignored(provider, delivery_id, other)),
        },
        Provider::Gitea => match event.as_deref() {
            Some("push") | None => {
                let push = gitea_push(delivery_id, &json()?)?;
                if push.before == push.after {
                    Ok(WebhookEvent::Ping {
                        provider,
                        delivery_id: push.delivery_id,
                    })
                } else {
                    Ok(WebhookEvent::Push(vec![push]))
                }
            }
            Some(other) => Ok(ignored(provider, delivery_id, other)),
        },
        Provider::Gitlab => match event.as_deref() {
            Some("Push Hook" | "Tag Push Hook") | None => gitlab_push(delivery_id, &json()?),
            Some(other) => Ok(ignored(provider, delivery_id, other)),
        },
        Provider::Bitbucket => match event.as_deref() {
            Some("diagnostics:ping") => Ok(WebhookEvent::Ping {
                provider,
                delivery_id,
            }),
            Some("repo:push") | None => bitbucket_push(delivery_id, &json()?),
            Some(other) => Ok(ignored(provider, delivery_id, other)),
        },
    }
}

fn ignored(provider: Provider, delivery_id: String, event: &str) -> WebhookEvent {
    WebhookEvent::Ignored {
        provider,
        delivery_id,
        event: event.to_owned(),
    }
}

fn event_name(provider: Provider, headers: &Headers) -> Option<String> {
    let names: &[&'static str] = match provider {
        Provider::Github | Provider::Git => &["X-GitHub-Event"],
        Provider::Gitea => &[
            "X-Gitea-Event",
            "X-Forgejo-Event",
            "X-Gogs-Event",
            "X-GitHub-Event",
        ],
        Provider::Gitlab => &["X-Gitlab-Event"],
        Provider::Bitbucket => &["X-Event-Key"],
    };
    headers.first_of(names).map(|(_, v)| v.to_owned())
}

/// The host's id for this delivery (the same on its retries), else a digest of the body, so
/// that deduplication works for senders that give none.
pub fn delivery_id(provider: Provider, headers: &Headers, body: &[u8]) -> String {
    let names: &[&'static str] = match provider {
        Provider::Github | Provider::Git => &["X-GitHub-Delivery"],
        Provider::Gitea => &[
            "X-Gitea-Delivery",
            "X-Forgejo-Delivery",
            "X-Gogs-Delivery",
            "X-GitHub-Delivery",
        ],
        Provider::Gitlab => &["Idempotency-Key", "X-Gitlab-Event-UUID"],
        Provider::Bitbucket => &["X-Request-UUID"],
    };
    match headers.first_of(names) {
        Some((_, id)) if !id.is_empty() => id.to_owned(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

fn is_form(headers: &Headers) -> bool {
    headers.get("Content-Type").is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

/// The `payload` field of a form-encoded body.
fn form_payload(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned())
}

/// The JSON document of a JSON body or of a form-encoded body's `payload=` field (GitHub's and
/// Gitea's `application/x-www-form-urlencoded` content type).
fn json_body(headers: &Headers, body: &[u8]) -> Result<serde_json::Value, WebhookError> {
    let result = if is_form(headers) {
        let payload = form_payload(body).ok_or_else(|| {
            WebhookError::Malformed("the form body has no `payload` field".into())
        })?;
        serde_json::from_str(&payload)
    } else {
        serde_json::from_slice(body)
    };
    result.map_err(|e| WebhookError::Malformed(format!("not a JSON document: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(json: &serde_json::Value) -> Result<T, WebhookError> {
    T::deserialize(json).map_err(|e| WebhookError::Malformed(format!("not a push payload: {e}")))
}

/// Splits a full ref into (branch, is_tag).
fn classify_ref(git_ref: &str) -> (Option<String>, bool) {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        (Some(branch.to_owned()), false)
    } else {
        (None, git_ref.starts_with("refs/tags/"))
    }
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    login: Option<String>,
}

impl Person {
    fn display(&self) -> String {
        self.username
            .as_deref()
            .or(self.login.as_deref())
            .or(self.name.as_deref())
            .unwrap_or_default()
            .to_owned()
    }
}

/// A commit as GitHub, Gitea and GitLab list it.
#[derive(Deserialize)]
struct HookCommit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    timestamp: Option<String>,
    author: Option<Person>,
}

impl From<HookCommit> for PushCommit {
    fn from(c: HookCommit) -> Self {
        PushCommit {
            id: c.id,
            message: c.message,
            author: c
                .author
                .as_ref()
                .and_then(|a| a.name.clone())
                .unwrap_or_default(),
            author_email: c.author.and_then(|a| a.email),
            timestamp: c.timestamp.unwrap_or_default(),
        }
    }
}

/// GitHub's push payload (and the same shape from a plain git hook script).
#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    commits: Vec<HookCommit>,
    pusher: Option<Person>,
    sender: Option<Person>,
}

fn github_push(
    provider: Provider,
    delivery_id: String,
    json: &serde_json::Value,
) -> Result<WebhookEvent, WebhookError> {
    let push: GithubPush = from_json(json)?;
    let (branch, is_tag) = classify_ref(&push.git_ref);
    let pusher = push
        .pusher
        .as_ref()
        .and_then(|p| p.name.clone())
        .or_else(|| push.sender.as_ref().map(Person::display))
        .unwrap_or_default();
    Ok(WebhookEvent::Push(vec![PushEvent {
        provider,
        delivery_id,
        branch,
        is_tag,
        is_branch_deletion: !is_tag && (push.deleted || is_zero(&push.after)),
        git_ref: push.git_ref,
        before: push.before,
        after: push.after,
        pusher,
        pusher_email: push.pusher.and_then(|p| p.email),
        commits: push.commits.into_iter().map(PushCommit::from).collect(),
    }]))
}

/// Gitea's push payload: GitHub's shape, with the pusher as a Gitea user.
#[derive(Deserialize)]
struct GiteaPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<HookCommit>,
    pusher: Option<Person>,
}

fn gitea_push(delivery_id: String, json: &serde_json::Value) -> Result<PushEvent, WebhookError> {
    let push: GiteaPush = from_json(json)?;
    let (branch, is_tag) = classify_ref(&push.git_ref);
    Ok(PushEvent {
        provider: Provider::Gitea,
        delivery_id,
        branch,
        is_tag,
        is_branch_deletion: !is_tag && is_zero(&push.after),
        git_ref: push.git_ref,
        before: push.before,
        after: push.after,
        pusher: push
            .pusher
            .as_ref()
            .map(Person::display)
            .unwrap_or_default(),
        pusher_email: push.pusher.and_then(|p| p.email),
        commits: push.commits.into_iter().map(PushCommit::from).collect(),
    })
}

/// GitLab's `push` and `tag_push` payloads.
#[derive(Deserialize)]
struct GitlabPush {
    #[serde(default)]
    object_kind: Option<String>,
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    user_username: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    commits: Vec<HookCommit>,
}

fn gitlab_push(
    delivery_id: String,
    json: &serde_json::Value,
) -> Result<WebhookEvent, WebhookError> {
    let push: GitlabPush = from_json(json)?;
    match push.object_kind.as_deref() {
        Some("push" | "tag_push") | None => {}
        Some(other) => {
            return Ok(ignored(Provider::Gitlab, delivery_id, other));
        }
    }
    let (branch, is_tag) = classify_ref(&push.git_ref);
    let is_tag = is_tag || push.object_kind.as_deref() == Some("tag_push");
    Ok(WebhookEvent::Push(vec![PushEvent {
        provider: Provider::Gitlab,
        delivery_id,
        branch,
        is_tag,
        is_branch_deletion: !is_tag && is_zero(&push.after),
        git_ref: push.git_ref,
        before: push.before,
        after: push.after,
        pusher: push.user_username.or(push.user_name).unwrap_or_default(),
        // GitLab sends "[REDACTED]" when the user hides their address.
        pusher_email: push.user_email.filter(|e| e.contains('@')),
        commits: push.commits.into_iter().map(PushCommit::from).collect(),
    }]))
}

/// Bitbucket Cloud's `repo:push`: `push.changes[]`, one per ref, with `new`/`old` ref states
/// (`null` when the ref was created/deleted) and commits newest first.
#[derive(Deserialize)]
struct BitbucketPush {
    actor: Option<BitbucketAccount>,
    push: BitbucketChanges,
}

#[derive(Deserialize)]
struct BitbucketChanges {
    changes: Vec<BitbucketChange>,
}

#[derive(Deserialize)]
struct BitbucketChange {
    new: Option<BitbucketRef>,
    old: Option<BitbucketRef>,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    commits: Vec<BitbucketCommit>,
}

#[derive(Deserialize)]
struct BitbucketRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: BitbucketTarget,
}

#[derive(Deserialize)]
struct BitbucketTarget {
    hash: String,
}

#[derive(Deserialize)]
struct BitbucketCommit {
    hash: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    date: Option<String>,
    author: Option<BitbucketAuthor>,
}

#[derive(Deserialize)]
struct BitbucketAuthor {
    /// `Name <email>` as git recorded it.
    #[serde(default)]
    raw: Option<String>,
    user: Option<BitbucketAccount>,
}

#[derive(Deserialize)]
struct BitbucketAccount {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

/// Splits git's `Name <email>` into its parts.
fn split_raw_author(raw: &str) -> (String, Option<String>) {
    match (raw.find('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => (
            raw[..open].trim().to_owned(),
            Some(raw[open + 1..close].trim().to_owned()),
        ),
        _ => (raw.trim().to_owned(), None),
    }
}

fn bitbucket_push(
    delivery_id: String,
    json: &serde_json::Value,
) -> Result<WebhookEvent, WebhookError> {
    let push: BitbucketPush = from_json(json)?;
    let pusher = push
        .actor
        .as_ref()
        .and_then(|a| a.nickname.clone().or_else(|| a.display_name.clone()))
        .unwrap_or_default();
    let mut events = Vec::with_capacity(push.push.changes.len());
    for change in push.push.changes {
        let Some(state) = change.new.as_ref().or(change.old.as_ref()) else {
            return Err(WebhookError::Malformed(
                "a Bitbucket change has neither a new nor an old ref".into(),
            ));
        };
        let is_tag = state.kind == "tag" || state.kind == "annotated_tag";
        let git_ref = if is_tag {
            format!("refs/tags/{}", state.name)
        } else {
            format!("refs/heads/{}", state.name)
        };
        let sha = |r: &Option<BitbucketRef>| {
            r.as_ref()
                .map_or_else(|| ZERO_SHA.to_owned(), |r| r.target.hash.clone())
        };
        let mut commits: Vec<PushCommit> = change
            .commits
            .into_iter()
            .map(|c| {
                let (name, email) = c
                    .author
                    .as_ref()
                    .and_then(|a| a.raw.as_deref())
                    .map(split_raw_author)
                    .unwrap_or_default();
                let name = if name.is_empty() {
                    c.author
                        .as_ref()
                        .and_then(|a| a.user.as_ref())
                        .and_then(|u| u.display_name.clone())
                        .unwrap_or_default()
                } else {
                    name
                };
                PushCommit {
                    id: c.hash,
                    message: c.message,
                    author: name,
                    author_email: email,
                    timestamp: c.date.unwrap_or_default(),
                }
            })
            .collect();
        commits.reverse();
        events.push(PushEvent {
            provider: Provider::Bitbucket,
            delivery_id: delivery_id.clone(),
            branch: (!is_tag).then(|| state.name.clone()),
            is_tag,
            is_branch_deletion: !is_tag && (change.closed || change.new.is_none()),
            git_ref,
            before: sha(&change.old),
            after: sha(&change.new),
            pusher: pusher.clone(),
            pusher_email: None,
            commits,
        });
    }
    Ok(WebhookEvent::Push(events))
}

/// A branch name or a glob over branch names: `*` and `?` stay within one path segment
/// (`release/*` matches `release/1.0`, not `release/1.0/hotfix`), `**` crosses segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPattern(String);

impl BranchPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    pub fn matches(&self, branch: &str) -> bool {
        glob_match(self.0.as_bytes(), branch.as_bytes())
    }
}

impl FromStr for BranchPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("refs/heads/").unwrap_or(s);
        if s.is_empty() {
            return Err(
                "the branch is empty; give a name such as main, or a glob such as release/*".into(),
            );
        }
        if s.chars()
            .any(|c| c.is_control() || c == ' ' || c == '~' || c == '^' || c == ':')
            || s.contains("..")
            || s.starts_with('/')
            || s.ends_with('/')
        {
            return Err(format!(
                "{s:?} is not a branch name or glob (see git check-ref-format)"
            ));
        }
        Ok(BranchPattern(s.to_owned()))
    }
}

impl fmt::Display for BranchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Whether `text` matches `pattern`, in O(pattern × text) steps and O(text) memory: one row of
/// a dynamic-programming table per pattern byte, from the end of the pattern back. (Trying each
/// split of the text at every `*` recursively takes exponential time on patterns such as
/// `a*a*a*a*b`.)
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let n = text.len();
    // `rest[j]`: whether pattern[i + 1..] matches text[j..]; `rest2[j]`: pattern[i + 2..].
    let mut rest = vec![false; n + 1];
    rest[n] = true;
    let mut rest2 = vec![false; n + 1];
    for i in (0..pattern.len()).rev() {
        let mut row = vec![false; n + 1];
        for j in (0..=n).rev() {
            let c = text.get(j).copied();
            row[j] = match pattern[i] {
                // `**`: nothing more, or one more byte of any kind.
                b'*' if pattern.get(i + 1) == Some(&b'*') => {
                    rest2[j] || (c.is_some() && row[j + 1])
                }
                // `*`: nothing more, or one more byte within the segment.
                b'*' => rest[j] || (c.is_some_and(|c| c != b'/') && row[j + 1]),
                b'?' => c.is_some_and(|c| c != b'/') && rest[j + 1],
                literal => c == Some(literal) && rest[j + 1],
            };
        }
        rest2 = std::mem::replace(&mut rest, row);
    }
    rest[0]
}

#[cfg(test)]
mod tests;
