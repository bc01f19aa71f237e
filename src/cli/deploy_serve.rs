//! `ferry deploy serve`: the deploy service's composition root — store, queue, mail, schedule,
//! HTTP, and the service manager's readiness and watchdog notifications.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tracing::info;

use crate::auth::SqliteAuthenticator;
use crate::systemd;

use super::accounts::open_store;
use super::serve::stop_signal;

/// `ferry deploy serve`
#[derive(Debug, Args)]
pub struct DeployServeArgs {
    /// Address to listen on (port 0 picks a free port; the log names it).
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub key: crate::cli::deploy_store::SecretKeyArgs,
    /// Services deploying at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Refuse webhook bodies larger than this many bytes (413).
    #[arg(long, value_name = "BYTES", default_value_t = crate::deploy::service::webhook::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Where repository mirrors and deploy journals live (default: DB.state beside the
    /// database).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The address users and git hosts reach the service at (`https://deploy.example.com`):
    /// the dashboard shows webhook URLs under it, the API's "add webhook" registers
    /// PUBLIC_URL/hooks/KEY, and `https://` marks cookies `Secure`.
    #[arg(long, value_name = "URL", env = "FERRY_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Mark the dashboard's cookies `Secure` (browsers then send them over HTTPS only): for a
    /// service behind a TLS proxy.
    #[arg(long)]
    pub secure_cookies: bool,
    /// The reverse proxies in front of the service (CIDR[,CIDR...], e.g. 127.0.0.1/32): a
    /// request from one of them is counted and logged as the client its X-Forwarded-For (else
    /// Forwarded: for=) names — the right-most address that is not itself a trusted proxy.
    /// Without it those headers are ignored.
    #[arg(long, value_name = "CIDR[,CIDR...]", env = "FERRY_TRUSTED_PROXY")]
    pub trusted_proxy: Option<crate::web::client_address::TrustedProxies>,
    /// Connections open at once, from all clients; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections open at once from one client address (an IPv6 /64); more are answered 503.
    /// A trusted proxy's connections count only towards --max-connections.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,
    /// How long a request's headers may take to arrive, and how long a kept-alive connection
    /// may wait idle for its next request, before it is closed: 15s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub header_timeout: Duration,
    /// How long a request's body (a webhook's payload) may take to arrive after its headers;
    /// a slower one is answered 408 and its connection closed: 60s, 2m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub body_timeout: Duration,
    #[command(flatten)]
    pub mail: MailArgs,
    /// Validate every service this often (one at a time; 0 turns it off): 90s, 15m, 1h, 1d.
    #[arg(long, value_name = "DURATION", default_value = "1h",
          value_parser = crate::deploy::service::validate::parse_interval)]
    pub validate_every: std::time::Duration,
}

/// A duration as `--validate-every` takes it, but never zero: a zero timeout would refuse every
/// request.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = crate::deploy::service::validate::parse_interval(text)?;
    if duration.is_zero() {
        return Err("a timeout must be at least 1s".to_owned());
    }
    Ok(duration)
}

fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected http[s]://HOST[:PORT][/PATH]".to_owned());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Deploy notifications by email (`ferry deploy serve`).
#[derive(Debug, Args)]
pub struct MailArgs {
    /// Mail each service's notification set after its deploys, through this server:
    /// smtp://HOST[:PORT] (no TLS, port 25), smtp+starttls://[USER@]HOST[:PORT] (STARTTLS, port
    /// 587) or smtps://[USER@]HOST[:PORT] (implicit TLS, port 465). The password for USER comes
    /// from FERRY_SMTP_PASSWORD or --smtp-password-file. Without --smtp no mail is sent.
    #[arg(
        long,
        value_name = "URL",
        env = "FERRY_SMTP_URL",
        requires = "mail_from"
    )]
    pub smtp: Option<String>,
    /// The sender of notifications: `ferry@example.com` or `Ferry <ferry@example.com>`.
    #[arg(long, value_name = "ADDR", env = "FERRY_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// A directory whose success.subject, success.txt, success.html, failure.subject,
    /// failure.txt and failure.html replace the built-in templates (minijinja).
    #[arg(long, value_name = "DIR", env = "FERRY_MAIL_TEMPLATES")]
    pub mail_templates: Option<PathBuf>,
    /// A file holding the SMTP password (its first line).
    #[arg(long, value_name = "FILE", env = "FERRY_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// Also trust this PEM certificate for the mail server (a private CA or self-signed).
    #[arg(long, value_name = "PEM", env = "FERRY_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
}

impl MailArgs {
    /// The notifier the flags ask for; `None` without `--smtp`.
    fn notifier(&self) -> anyhow::Result<Option<crate::deploy::service::notify::Notifier>> {
        use crate::deploy::service::model::Secret;
        use crate::deploy::service::notify::{MailSettings, Notifier};

        let Some(smtp) = &self.smtp else {
            return Ok(None);
        };
        let password = match (
            &self.smtp_password_file,
            std::env::var("FERRY_SMTP_PASSWORD"),
        ) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the SMTP password from {}", path.display())
                })?;
                Some(Secret::new(text.lines().next().unwrap_or_default()))
            }
            (None, Ok(password)) => Some(Secret::new(password)),
            (None, Err(_)) => None,
        };
        let settings = MailSettings {
            smtp: smtp.parse()?,
            password,
            from: self.mail_from.clone().unwrap_or_default(),
            templates: self.mail_templates.clone(),
            ca_file: self.smtp_ca_file.clone(),
        };
        Ok(Some(Notifier::new(&settings)?))
    }
}

pub(super) async fn deploy_serve(db: &Path, args: DeployServeArgs) -> anyhow::Result<()> {
    use crate::deploy::service::queue::{DeployQueue, QueueConfig};
    use crate::deploy::service::store::DeployStore;

    let new = !db.exists();
    let key = args.key.load(db)?;
    let store = DeployStore::open(db, key)
        .with_context(|| format!("cannot open the deploy database {}", db.display()))?;
    if new {
        info!(db = %db.display(), "created a new database (it did not exist)");
    }
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| QueueConfig::default_state_dir(db));
    let notifier = args.mail.notifier()?.map(Arc::new);
    match &notifier {
        Some(notifier) => info!(smtp = %notifier.smtp(), "deploy notifications by email"),
        None => info!("email notifications are off (no --smtp)"),
    }
    let queue = DeployQueue::with_notifier(
        Arc::new(store),
        QueueConfig {
            parallel: usize::from(args.parallel),
            state_dir,
        },
        notifier,
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Type=notify units: ready once the listener is bound (connections wait in its backlog until
    // the accept loop runs), and the watchdog fed while the runtime runs tasks.
    systemd::ready(&format!(
        "accepting HTTP connections on {}",
        listener.local_addr()?
    ));
    tokio::spawn(systemd::keep_watchdog_fed());
    tokio::spawn(crate::deploy::service::validate::run_schedule(
        Arc::clone(queue.store()),
        args.validate_every,
    ));
    crate::web::serve(
        listener,
        crate::web::AppState {
            queue,
            max_body_bytes: args.max_body_bytes,
            public_url: args.public_url.clone(),
            dashboard: Arc::new(crate::web::pages::Dashboard::new(
                SqliteAuthenticator::new(Arc::new(open_store(db)?)),
                crate::web::pages::DashboardSettings {
                    secure_cookies: args.secure_cookies,
                    public_url: args.public_url,
                    ..Default::default()
                },
            )),
            trusted_proxies: Arc::new(args.trusted_proxy.unwrap_or_default()),
            limits: crate::web::connections::HttpLimits {
                max_connections: args.max_connections as usize,
                max_connections_per_client: args.max_connections_per_client as usize,
                header_timeout: args.header_timeout,
                body_timeout: args.body_timeout,
            },
        },
        async {
            stop_signal().await;
            systemd::stopping();
        },
    )
    .await
    .context("the deploy service stopped")
}
