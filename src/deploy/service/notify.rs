//! Email after each deploy: the service's notification set names who hears about it (success
//! and failure lists, the pusher, the commit authors); each recipient gets one
//! multipart/alternative message, text and HTML, rendered from templates (built in, or
//! overridden from a directory). Mail is sent over SMTP with lettre; a mail server that fails
//! or cannot be reached is logged and retried briefly, and never changes how a deploy ended.
//! This module reads the store but never writes it, and never runs a deploy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use minijinja::Environment;
use minijinja::value::Value;
use serde::Serialize;
use tracing::{debug, info, warn};

use super::model::{Deploy, DeployStatus, NotificationSet, Secret};
use super::store::{DeployStore, DeployStoreError};
use crate::deploy::engine::plan::human_bytes;

/// How many paths of each kind (added, modified, removed) a message lists; the counts are
/// always complete.
pub const MAX_LISTED_PATHS: usize = 200;

/// The templates, by the file name a directory overrides each with.
const BUILTIN_TEMPLATES: [(&str, &str); 6] = [
    (
        "success.subject",
        include_str!("notify/templates/success.subject"),
    ),
    ("success.txt", include_str!("notify/templates/success.txt")),
    (
        "success.html",
        include_str!("notify/templates/success.html"),
    ),
    (
        "failure.subject",
        include_str!("notify/templates/failure.subject"),
    ),
    ("failure.txt", include_str!("notify/templates/failure.txt")),
    (
        "failure.html",
        include_str!("notify/templates/failure.html"),
    ),
];

/// Waits before the second and third attempt at one message: a mail server that is down for
/// longer is logged, not waited for.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "invalid SMTP URL {url:?}: {reason}; use smtp://HOST[:PORT] (no TLS), \
         smtp+starttls://[USER@]HOST[:PORT] (STARTTLS, port 587) or \
         smtps://[USER@]HOST[:PORT] (implicit TLS, port 465)"
    )]
    SmtpUrl { url: String, reason: String },
    #[error(
        "invalid sender {0:?}: use an address, or a name and one as in `Ferry <ferry@example.com>`"
    )]
    From(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mail template {name}: {source:#}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
}

impl NotifyError {
    /// The mail server was not reached, or stopped answering (no SMTP reply to go by).
    fn is_unreachable(&self) -> bool {
        matches!(self, NotifyError::Smtp(e) if e.status().is_none())
    }
}

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS (a relay on localhost or a trusted network).
    None,
    /// `smtp+starttls://`: STARTTLS, required (RFC 3207).
    StartTls,
    /// `smtps://`: TLS from the first byte (RFC 8314).
    Tls,
}

/// Where mail goes: `smtp://HOST[:PORT]`, `smtp+starttls://[USER@]HOST[:PORT]` or
/// `smtps://[USER@]HOST[:PORT]`. The URL never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

impl std::str::FromStr for SmtpUrl {
    type Err = NotifyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| NotifyError::SmtpUrl {
            url: redacted(text),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::None, 25),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        if url.password().is_some() {
            return Err(bad(
                "the URL holds a password; give it in FERRY_SMTP_PASSWORD or \
                 --smtp-password-file instead",
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(bad("a path or query means nothing here"));
        }
        let user = match url.username() {
            "" => None,
            user => Some(
                percent_encoding::percent_decode_str(user)
                    .decode_utf8()
                    .map_err(|_| bad("the user name is not UTF-8"))?
                    .into_owned(),
            ),
        };
        Ok(SmtpUrl {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            user,
        })
    }
}

/// `text` with whatever follows the user name's `:` before the host replaced, so an error
/// never repeats a password.
fn redacted(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let host_and_rest = &rest[userinfo.len()..];
            format!("{scheme}://{user}:<redacted>{host_and_rest}")
        }
        _ => text.to_owned(),
    }
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.security {
            SmtpSecurity::None => "smtp",
            SmtpSecurity::StartTls => "smtp+starttls",
            SmtpSecurity::Tls => "smtps",
        };
        let user = self.user.as_deref().map_or(String::new(), |u| {
            format!(
                "{}@",
                percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC)
            )
        });
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

/// Everything `ferry deploy serve` needs to send mail.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp: SmtpUrl,
    /// For the URL's user; never logged (its `Debug` is redacted).
    pub password: Option<Secret>,
    /// The `From:` of every message.
    pub from: String,
    /// Templates here replace the built-in ones of the same name.
    pub templates: Option<PathBuf>,
    /// Trust this PEM certificate (a private CA or a self-signed server) besides the system's
    /// roots.
    pub ca_file: Option<PathBuf>,
}

/// The six templates, parsed once at start-up so a broken override stops the service then,
/// not at the first deploy.
#[derive(Debug)]
pub struct MailTemplates {
    env: Environment<'static>,
}

/// One rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl MailTemplates {
    /// The built-in templates.
    pub fn builtin() -> Self {
        Self::load(None).expect("the built-in templates parse")
    }

    /// The built-in templates, each replaced by the file of the same name in `dir` when there
    /// is one. HTML templates (`.html`) escape every value; the others do not.
    pub fn load(dir: Option<&Path>) -> Result<Self, NotifyError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        if let Some(dir) = dir {
            // A missing directory is a typo, not "no overrides".
            std::fs::read_dir(dir).map_err(|source| NotifyError::Read {
                path: dir.to_owned(),
                source,
            })?;
        }
        for (name, builtin) in BUILTIN_TEMPLATES {
            let source = match dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .map_err(|source| NotifyError::Read { path, source })?,
                _ => builtin.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|source| NotifyError::Template {
                    name: name.to_owned(),
                    source,
                })?;
        }
        Ok(MailTemplates { env })
    }

    /// The subject (one line), text and HTML for a deploy.
    pub fn render(&self, context: &MailContext) -> Result<RenderedMail, NotifyError> {
        let kind = if context.ok { "success" } else { "failure" };
        let value = Value::from_serialize(context);
        let render = |part: &str| {
            let name = format!("{kind}.{part}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(value.clone()))
                .map_err(|source| NotifyError::Template { name, source })
        };
        let subject = render("subject")?;
        Ok(RenderedMail {
            // A header is one line: newlines in a template or a value must not make it two.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

/// Paths a deploy changed, each list cut at [`MAX_LISTED_PATHS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployFiles {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub removed: Vec<String>,
}

impl DeployFiles {
    /// Keeps the first [`MAX_LISTED_PATHS`] of each list.
    pub fn bounded(mut self) -> Self {
        for list in [&mut self.added, &mut self.modified, &mut self.removed] {
            list.truncate(MAX_LISTED_PATHS);
        }
        self
    }
}

/// What the templates see (README lists it).
#[derive(Debug, Clone, Serialize)]
pub struct MailContext {
    pub ok: bool,
    /// `ok` or `failed`.
    pub status: &'static str,
    pub service: String,
    /// The FTP target's host.
    pub host: String,
    /// The FTP target as a URL, without a password.
    pub target: String,
    pub branch: Option<String>,
    pub deploy_id: i64,
    pub commit: String,
    pub short_commit: String,
    pub pusher: Option<String>,
    pub commits: Vec<MailCommit>,
    pub files: MailFiles,
    pub bytes: u64,
    /// `bytes`, readable (`1.5 MiB`).
    pub size: String,
    pub seconds: f64,
    /// `seconds`, readable (`2.4 s`, `3 min 5 s`).
    pub duration: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MailCommit {
    pub id: String,
    pub short_id: String,
    pub message: String,
    /// The message's first line.
    pub title: String,
    pub author: String,
    pub author_email: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MailFiles {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub removed: Vec<String>,
    pub added_count: u64,
    pub modified_count: u64,
    pub removed_count: u64,
    /// Changed paths the lists leave out.
    pub omitted: u64,
}

impl MailContext {
    pub fn new(
        deploy: &Deploy,
        host: &str,
        target: &str,
        files: DeployFiles,
        elapsed: Duration,
    ) -> Self {
        let stats = deploy.stats;
        let listed = (files.added.len() + files.modified.len() + files.removed.len()) as u64;
        let total = stats.files_added + stats.files_modified + stats.files_removed;
        let seconds = elapsed.as_secs_f64();
        MailContext {
            ok: deploy.status == DeployStatus::Ok,
            status: if deploy.status == DeployStatus::Ok {
                "ok"
            } else {
                "failed"
            },
            service: deploy.service.clone(),
            host: host.to_owned(),
            target: target.to_owned(),
            branch: deploy.branch.clone(),
            deploy_id: deploy.id,
            commit: deploy.commit_to.clone(),
            short_commit: short(&deploy.commit_to),
            pusher: deploy.user.clone(),
            commits: deploy
                .commits
                .iter()
                .map(|c| MailCommit {
                    id: c.id.clone(),
                    short_id: short(&c.id),
                    message: c.message.clone(),
                    title: c.message.lines().next().unwrap_or_default().to_owned(),
                    author: c.author.clone(),
                    author_email: c.author_email.clone(),
                })
                .collect(),
            files: MailFiles {
                added: files.added,
                modified: files.modified,
                removed: files.removed,
                added_count: stats.files_added,
                modified_count: stats.files_modified,
                removed_count: stats.files_removed,
                omitted: total.saturating_sub(listed),
            },
            bytes: stats.bytes,
            size: human_bytes(stats.bytes),
            seconds,
            duration: human_duration(elapsed),
            error: deploy.error.clone(),
        }
    }
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = elapsed.as_secs();
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// Who gets mail about `deploy`: the set's success or failure list, then the pusher and the
/// commit authors if the set asks for them after such a deploy; each address once (compared
/// without regard to case), in that order. Addresses that do not parse (a pusher name that is
/// no address, an author without one) are left out.
pub fn recipients(set: &NotificationSet, deploy: &Deploy) -> Vec<Address> {
    let ok = deploy.status == DeployStatus::Ok;
    let listed = if ok {
        &set.success_emails
    } else {
        &set.failure_emails
    };
    // (address, named by the set itself)
    let mut candidates: Vec<(&str, bool)> = listed.iter().map(|a| (a.as_str(), true)).collect();
    if set.notify_pusher.includes(ok) {
        // The address the webhook gave, else the pusher's name when it is an address (a push
        // queued by hand names its user that way).
        let pusher = deploy.user_email.as_deref().or(deploy.user.as_deref());
        candidates.extend(pusher.map(|a| (a, false)));
    }
    if set.notify_authors.includes(ok) {
        let authors = deploy
            .commits
            .iter()
            .filter_map(|c| c.author_email.as_deref());
        candidates.extend(authors.map(|a| (a, false)));
    }
    let mut seen = std::collections::HashSet::new();
    let mut addresses = Vec::new();
    for (candidate, listed) in candidates {
        let Ok(address) = candidate.trim().parse::<Address>() else {
            debug!(candidate, "not an email address; no mail for it");
            continue;
        };
        if !listed && is_no_reply(&address) {
            debug!(%address, "a no-reply address; no mail for it");
            continue;
        }
        if seen.insert(address.to_string().to_lowercase()) {
            addresses.push(address);
        }
    }
    addresses
}

/// Addresses hosts put in commits and pushes to hide the real one
/// (`ID+name@users.noreply.github.com`, `name@noreply.gitea.example`, `noreply@...`): mail to
/// them bounces.
fn is_no_reply(address: &Address) -> bool {
    let user = address.user().to_ascii_lowercase();
    matches!(user.as_str(), "noreply" | "no-reply")
        || address
            .domain()
            .split('.')
            .any(|label| label.eq_ignore_ascii_case("noreply"))
}

/// Sends the notifications of finished deploys.
pub struct Notifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: MailTemplates,
    smtp: SmtpUrl,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp", &self.smtp.to_string())
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Parses the sender, loads the templates and sets the transport up; nothing is sent yet.
    pub fn new(settings: &MailSettings) -> Result<Self, NotifyError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| NotifyError::From(settings.from.clone()))?;
        let templates = MailTemplates::load(settings.templates.as_deref())?;
        let smtp = settings.smtp.clone();
        let tls_parameters = || -> Result<TlsParameters, NotifyError> {
            let mut builder = TlsParameters::builder(smtp.host.clone());
            if let Some(path) = &settings.ca_file {
                let pem = std::fs::read(path).map_err(|source| NotifyError::Read {
                    path: path.clone(),
                    source,
                })?;
                builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(builder.build_rustls()?)
        };
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &smtp.user {
            let password = settings
                .password
                .as_ref()
                .map_or(String::new(), |p| p.expose().to_owned());
            builder = builder.credentials(Credentials::new(user.clone(), password));
            if smtp.security == SmtpSecurity::None {
                warn!(smtp = %smtp, "the SMTP password will cross the network unencrypted; use smtp+starttls:// or smtps://");
            }
        }
        Ok(Notifier {
            transport: builder.build(),
            from,
            templates,
            smtp,
        })
    }

    pub fn smtp(&self) -> &SmtpUrl {
        &self.smtp
    }

    /// Mails everyone the service's notification set names about the finished deploy `id`.
    /// Never fails: what goes wrong is logged with the service and the deploy.
    pub async fn notify(
        self: Arc<Self>,
        store: Arc<DeployStore>,
        id: i64,
        files: DeployFiles,
        elapsed: Duration,
    ) {
        let loaded = tokio::task::spawn_blocking(move || {
            let deploy = store.deploys().get(id)?;
            let service = store.services().get(&deploy.service)?;
            let set = match &service.notification_set {
                Some(name) => Some(store.notification_sets().get(name)?),
                None => None,
            };
            Ok::<_, DeployStoreError>((deploy, service, set))
        })
        .await;
        let (deploy, service, set) = match loaded {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                warn!(deploy = id, %error, "cannot read the deploy to notify about it");
                return;
            }
            Err(error) => {
                warn!(deploy = id, %error, "the notification task failed");
                return;
            }
        };
        let Some(set) = set else {
            debug!(
                service = service.name,
                deploy = id,
                "no notification set; no mail"
            );
            return;
        };
        let to = recipients(&set, &deploy);
        if to.is_empty() {
            debug!(
                service = service.name,
                deploy = id,
                set = set.name,
                "nobody to notify"
            );
            return;
        }
        let context = MailContext::new(
            &deploy,
            &service.target.host,
            &service.target.display_url(),
            files.bounded(),
            elapsed,
        );
        let mail = match self.templates.render(&context) {
            Ok(mail) => mail,
            Err(error) => {
                warn!(service = service.name, deploy = id, %error, "cannot render the notification mail");
                return;
            }
        };
        let mut sent = 0;
        let mut pending = to.iter();
        while let Some(address) = pending.next() {
            let Err(error) = self.send(&mail, address).await else {
                sent += 1;
                continue;
            };
            // A server that cannot be reached fails every recipient alike: one attempt and one
            // line for all of them. A refusal of one address leaves the others to try.
            let mut unsent = vec![address.to_string()];
            if error.is_unreachable() {
                unsent.extend(pending.by_ref().map(Address::to_string));
            }
            warn!(
                service = service.name,
                deploy = id,
                recipients = unsent.join(", "),
                smtp = %self.smtp,
                %error,
                "notification mail failed; the deploy's outcome stands"
            );
        }
        if sent > 0 {
            info!(
                service = service.name,
                deploy = id,
                recipients = sent,
                "notification mail sent"
            );
        }
    }

    /// Builds the message for one recipient and sends it, retrying what may pass later.
    async fn send(&self, mail: &RenderedMail, to: &Address) -> Result<(), NotifyError> {
        let message = self.message(mail, to)?;
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => return Ok(()),
                // A 5xx refusal or a TLS failure will not pass on a second try.
                Err(error) if error.is_permanent() || error.is_tls() => {
                    return Err(error.into());
                }
                Err(error) => match delays.next() {
                    Some(delay) => {
                        debug!(recipient = %to, %error, "mail not sent; trying again");
                        tokio::time::sleep(*delay).await;
                    }
                    None => return Err(error.into()),
                },
            }
        }
    }

    fn message(&self, mail: &RenderedMail, to: &Address) -> Result<Message, NotifyError> {
        Ok(Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))?)
    }
}

#[cfg(test)]
mod tests;
