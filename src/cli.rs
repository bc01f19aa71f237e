//! The command line: `ferry serve`, `ferry user ...`, `ferry group ...`, `ferry deploy ...` —
//! parsed with clap and carried out here. The subcommand names and flags are a contract (scripts and tests drive them);
//! extend them, never rename them.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use tracing::{info, warn};

use crate::auth::store::{AccountStore, NewAccount};
use crate::auth::{AllowedNetworks, HostList, Permissions, SqliteAuthenticator, TlsRequirement};
use crate::client::Verification;
use crate::config::{DEFAULT_DB, FileConfig, FsSettings, ServeArgs, ServeSettings, StorageSpec};
use crate::deploy::executor::default_retry_policy;
use crate::deploy::journal::default_state_dir;
use crate::deploy::marker::MARKER_NAME;
use crate::deploy::plan::human_bytes;
use crate::deploy::push::{self, DeployRequest, Revision};
use crate::deploy::{DeployError, DeployTarget};
use crate::server::tls::HostCertificate;
use crate::server::tls::write_development_certificate;
use crate::server::virtual_hosts::VirtualHost;
use crate::server::xferlog::XferLog;
use crate::server::{self, Server, Shutdown, TlsContext};
use crate::storage::StorageProvider;
use crate::storage::fs::FsProvider;
use crate::systemd;

/// An FTP/FTPS server, FTP client and git-to-FTP deploy service.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// The accounts database (SQLite; created if missing).
    #[arg(long, global = true, value_name = "FILE", env = "FERRY_DB")]
    pub db: Option<PathBuf>,
    /// How log lines are written to standard error: text, or json (one object per line).
    #[arg(
        long,
        global = true,
        value_name = "FORMAT",
        env = "FERRY_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the FTP server.
    Serve(Box<ServeArgs>),
    /// Manage FTP accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups of accounts (shared home and permissions).
    #[command(subcommand)]
    Group(GroupCommand),
    /// The accounts database as a whole: copies for server nodes that share their accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Certificates for FTPS.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Mirror a git commit onto an FTP/FTPS server.
    #[command(subcommand)]
    Deploy(DeployCommand),
}

const DEPLOY_EXIT_CODES: &str = "\
Exit codes:
  0  done (or nothing to do)
  1  any other error
  2  usage: bad arguments, target URL or ignore pattern
  3  connection: cannot reach the server, log in, or set up TLS
  4  transfer: an upload, delete or other file operation failed
  5  git: the repository or the revision cannot be read

The password comes from --password-stdin, else FERRY_FTP_PASSWORD.";

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Upload what changed since the deployed commit, delete what was removed, then move the
    /// marker. A failed push resumes where it stopped when run again.
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Push {
        #[command(flatten)]
        target: DeployTargetArgs,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Upload the whole tree, whatever the target's marker says (first deploy).
        #[arg(long)]
        init: bool,
    },
    /// Record a commit as deployed without uploading anything (adopting an existing site).
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Catchup {
        #[command(flatten)]
        target: DeployTargetArgs,
    },
    /// Show the deployed commit and what a push would change.
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Status {
        #[command(flatten)]
        target: DeployTargetArgs,
    },
    /// Manage deploy services: a repository branch deployed to an FTP target on each push.
    Service(crate::deploy::service_cli::ServiceArgs),
    /// Manage notification sets: who is mailed after a service's deploys.
    Notify(crate::deploy::notify_cli::NotifyArgs),
    /// Manage the tokens that authenticate calls to the JSON API under `/api/`.
    Token(crate::deploy::token_cli::TokenArgs),
    /// Run the deploy service: webhooks on `POST /hooks/KEY`, a durable queue deploying each
    /// matching push in the background, a JSON API under `/api/`, and `/healthz`.
    Serve(DeployServeArgs),
    /// The deploy log: each deploy's trigger, commit, files added/modified/removed, bytes,
    /// duration and result; with SERVICE, its statistics too.
    Log(crate::deploy::history_cli::LogArgs),
    /// Mark a failed deploy skipped: a restore leaves it out. Who and why are recorded; nothing
    /// is deleted.
    Skip(crate::deploy::history_cli::SkipArgs),
    /// Redeploy a service's failed deploys: queue the newest commit of the failed run, deployed
    /// from the target's real state. `--preview` shows the commits and the net file changes.
    /// A running `ferry deploy serve` carries the deploy out.
    Restore(crate::deploy::history_cli::RestoreArgs),
    /// Deploy a chosen commit (roll back or forward): queue it, or `--preview` the net file
    /// changes. A running `ferry deploy serve` carries the deploy out.
    Rollback(crate::deploy::history_cli::RollbackArgs),
}

/// `ferry deploy serve`
#[derive(Debug, Args)]
pub struct DeployServeArgs {
    /// Address to listen on (port 0 picks a free port; the log names it).
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub key: crate::deploy::service_cli::SecretKeyArgs,
    /// Services deploying at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Refuse webhook bodies larger than this many bytes (413).
    #[arg(long, value_name = "BYTES", default_value_t = crate::deploy::webhook::DEFAULT_MAX_BODY_BYTES)]
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
          value_parser = crate::deploy::validate::parse_interval)]
    pub validate_every: std::time::Duration,
}

/// A duration as `--validate-every` takes it, but never zero: a zero timeout would refuse every
/// request.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = crate::deploy::validate::parse_interval(text)?;
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
    fn notifier(&self) -> anyhow::Result<Option<crate::deploy::notify::Notifier>> {
        use crate::deploy::notify::{MailSettings, Notifier};
        use crate::deploy::store::Secret;

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

/// Where from and where to, shared by the deploy commands.
#[derive(Debug, clap::Args)]
pub struct DeployTargetArgs {
    /// The git repository (a work tree or a bare repository).
    #[arg(value_name = "REPO_DIR", default_value = ".")]
    pub repo_dir: PathBuf,
    /// ftp://USER@HOST[:PORT]/PATH, or ftps:// for explicit FTPS (AUTH TLS); PATH is relative
    /// to the login directory.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Deploy the tip of this branch (default: HEAD).
    #[arg(long, value_name = "B", conflicts_with = "commit")]
    pub branch: Option<String>,
    /// Deploy this commit.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Do not verify the server's TLS certificate (the connection can then be read and changed
    /// by anyone on the path).
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
    /// Verify the server's certificate against this PEM file instead of the system roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Read the FTP password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Leave files matching this gitignore-style pattern alone (repeatable; adds to
    /// .ferryignore).
    #[arg(long, value_name = "PAT")]
    pub exclude: Vec<String>,
    /// Connections to upload and delete over (push).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Seconds a connection may sit idle (waiting for the others) before it sends a NOOP, so
    /// that the server does not time it out.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_keepalive)]
    pub keepalive: f64,
}

fn parse_keepalive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.05..=3600.0).contains(&secs) => Ok(secs),
        _ => Err("expected seconds between 0.05 and 3600".to_owned()),
    }
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a self-signed certificate for localhost (development and tests only).
    Dev {
        /// Where to write cert.pem and key.pem.
        #[arg(long, value_name = "DIR", default_value = "certs-dev")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; the password is read from standard input.
    Add {
        name: String,
        /// Group whose home and permissions the account inherits.
        #[arg(long)]
        group: Option<String>,
        /// Home directory (relative to the server root, or absolute). Default: the group's, else
        /// the user name.
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Permission letters out of elradfmwMT (default: the group's, else all).
        #[arg(long, value_name = "LETTERS")]
        perms: Option<String>,
        /// May log in to the deploy dashboard.
        #[arg(long)]
        admin: bool,
        /// What this account must encrypt (none, control, data, all), beyond the server's policy.
        #[arg(long, value_name = "WHAT")]
        tls_required: Option<TlsRequirement>,
        /// The named storage ([storage.NAME] in ferry.toml) holding the account's files.
        /// Default: the group's, else the server's.
        #[arg(long, value_name = "NAME")]
        storage: Option<String>,
        #[command(flatten)]
        hosting: UserHostingArgs,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's flags; flags not given keep their value.
    Edit {
        name: String,
        /// Let the account log in to the deploy dashboard.
        #[arg(long, conflicts_with = "no_admin")]
        admin: bool,
        /// Take the dashboard away from the account (its sessions end at once).
        #[arg(long)]
        no_admin: bool,
        /// Allow logins again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse logins without deleting the account.
        #[arg(long)]
        disable: bool,
        /// Keep the account's files on this named storage ([storage.NAME] in ferry.toml).
        #[arg(long, value_name = "NAME", conflicts_with = "inherit_storage")]
        storage: Option<String>,
        /// Take the group's storage again, else the server's.
        #[arg(long)]
        inherit_storage: bool,
        #[command(flatten)]
        hosting: UserHostingArgs,
        /// Allow logins from any network again (or the group's list, if it has one).
        #[arg(long, conflicts_with = "allowed_networks")]
        any_network: bool,
        /// Serve the account on every host again (or the group's hosts, if it has a list).
        #[arg(long, conflicts_with = "hosts")]
        any_host: bool,
    },
    /// List accounts.
    List,
    /// Delete an account (its files stay).
    Del { name: String },
    /// Change an account's password, read from standard input.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Write a consistent copy of the accounts and groups for server nodes that open it with
    /// `serve --accounts-read-only`. Ship it to each node (scp, rsync, a config-management
    /// tool); a node reads a newer copy at the next login, without a restart.
    Snapshot {
        /// Where to write the copy (it appears there whole, by a rename).
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group.
    Add {
        name: String,
        /// Home directory shared by the group's accounts.
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Permission letters out of elradfmwMT.
        #[arg(long, value_name = "LETTERS")]
        perms: Option<String>,
        /// What the group's accounts must encrypt (none, control, data, all).
        #[arg(long, value_name = "WHAT")]
        tls_required: Option<TlsRequirement>,
        /// The named storage ([storage.NAME] in ferry.toml) holding the group's files.
        #[arg(long, value_name = "NAME")]
        storage: Option<String>,
        /// Networks the group's accounts may log in from (CIDRs or addresses, comma-separated),
        /// unless an account has its own list. Default: any.
        #[arg(long, value_name = "CIDR[,CIDR...]")]
        allowed_networks: Option<AllowedNetworks>,
        /// Virtual hosts the group's accounts are served on, unless an account has its own list.
        #[arg(long, value_name = "NAME[,NAME...]")]
        hosts: Option<HostList>,
    },
    /// List groups.
    List,
    /// Delete a group that no account uses.
    Del { name: String },
}

/// `user add` and `user edit` flags for hosting: where an account may log in from and what it
/// is told at login and logout.
#[derive(Debug, Args)]
pub struct UserHostingArgs {
    /// Networks the account may log in from (CIDRs or addresses, comma-separated); others get
    /// the reply of a wrong password. Default: the group's, else any.
    #[arg(long, value_name = "CIDR[,CIDR...]")]
    pub allowed_networks: Option<AllowedNetworks>,
    /// Virtual hosts ([hosts."NAME"] in ferry.toml) the account is served on; the first is its
    /// site when the client sends no HOST. Default: the group's, else every host.
    #[arg(long, value_name = "NAME[,NAME...]")]
    pub hosts: Option<HostList>,
    /// Shown in the 230 reply after login (\n starts a new line; "" removes it).
    #[arg(long, value_name = "TEXT")]
    pub login_message: Option<String>,
    /// Shown in the 221 reply to QUIT (\n starts a new line; "" removes it).
    #[arg(long, value_name = "TEXT")]
    pub logout_message: Option<String>,
}

impl UserHostingArgs {
    fn is_empty(&self) -> bool {
        self.allowed_networks.is_none()
            && self.hosts.is_none()
            && self.login_message.is_none()
            && self.logout_message.is_none()
    }

    /// Stores what was given on an existing account.
    fn apply(&self, store: &AccountStore, name: &str) -> anyhow::Result<()> {
        if let Some(networks) = &self.allowed_networks {
            store.set_user_allowed_networks(name, Some(networks))?;
        }
        if let Some(hosts) = &self.hosts {
            store.set_user_hosts(name, Some(hosts))?;
        }
        if let Some(message) = &self.login_message {
            store.set_user_login_message(name, message_or_none(message).as_deref())?;
        }
        if let Some(message) = &self.logout_message {
            store.set_user_logout_message(name, message_or_none(message).as_deref())?;
        }
        Ok(())
    }
}

/// A message as typed: `\n` is a line break, and an empty one means none.
fn message_or_none(text: &str) -> Option<String> {
    let text = text.replace("\\n", "\n");
    (!text.is_empty()).then_some(text)
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(self.db, *args).await,
            Command::User(command) => {
                let db = db_path(self.db, None);
                if !matches!(command, UserCommand::Add { .. }) {
                    require_database(&db)?;
                }
                user_command(&open_store(&db)?, command)
            }
            Command::Group(command) => {
                let db = db_path(self.db, None);
                if !matches!(command, GroupCommand::Add { .. }) {
                    require_database(&db)?;
                }
                group_command(&open_store(&db)?, command)
            }
            Command::Accounts(AccountsCommand::Snapshot { out }) => {
                let db = db_path(self.db, None);
                require_database(&db)?;
                let store = open_store(&db)?;
                store.snapshot(&out).with_context(|| {
                    format!("cannot write the accounts snapshot {}", out.display())
                })?;
                crate::outln!(
                    "wrote {}; start nodes on it with: ferry --db FILE serve --accounts-read-only",
                    out.display()
                );
                Ok(())
            }
            Command::Deploy(command) => deploy_command(self.db, command).await,
            Command::Certs(CertsCommand::Dev { dir }) => {
                let (cert, key) = write_development_certificate(&dir).with_context(|| {
                    format!("cannot write a certificate into {}", dir.display())
                })?;
                crate::outln!("wrote {} and {}", cert.display(), key.display());
                crate::outln!("for development only: clients cannot verify this certificate");
                Ok(())
            }
        }
    }
}

/// Opens one storage of the server: local disk (the root created if missing) or object storage.
async fn open_storage(spec: &StorageSpec) -> anyhow::Result<Arc<dyn StorageProvider>> {
    match spec {
        StorageSpec::Fs(FsSettings { root }) => {
            std::fs::create_dir_all(root).with_context(|| {
                format!("cannot create the FTP root directory {}", root.display())
            })?;
            let root = std::fs::canonicalize(root)
                .with_context(|| format!("cannot open the FTP root {}", root.display()))?;
            Ok(Arc::new(FsProvider::new(root)))
        }
        #[cfg(feature = "s3")]
        StorageSpec::S3(settings) => Ok(Arc::new(
            crate::storage::s3::S3Provider::connect(settings).await?,
        )),
    }
}

/// One line for the start-up log: where files go.
fn describe_storage(spec: &StorageSpec) -> String {
    match spec {
        StorageSpec::Fs(FsSettings { root }) => format!("local disk under {}", root.display()),
        #[cfg(feature = "s3")]
        StorageSpec::S3(settings) => format!(
            "s3://{}/{} at {}",
            settings.bucket,
            settings.prefix.as_deref().unwrap_or(""),
            settings.endpoint.as_deref().unwrap_or("AWS")
        ),
    }
}

fn db_path(flag: Option<PathBuf>, file: Option<&FileConfig>) -> PathBuf {
    flag.or_else(|| file.and_then(|f| f.db.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

fn open_store(path: &Path) -> anyhow::Result<AccountStore> {
    Ok(AccountStore::open(path)?)
}

/// Refuses to go on when there is no database at `db`: only commands that add something create
/// one, so a typo in `--db` is an error instead of an empty new database.
pub fn require_database(db: &Path) -> anyhow::Result<()> {
    if db.exists() {
        return Ok(());
    }
    bail!(
        "there is no database at {} (nothing was added to it yet, or the path has a typo); the \
         commands that add something create it, such as `ferry user add`",
        db.display()
    )
}

fn parse_perms(letters: Option<String>) -> anyhow::Result<Option<Permissions>> {
    letters
        .map(|l| l.parse::<Permissions>().map_err(anyhow::Error::msg))
        .transpose()
}

/// The first line of standard input, without its line ending.
/// `example` is the command to show when the flag is missing, as in `ferry user add NAME`.
fn read_password(password_stdin: bool, example: &str) -> anyhow::Result<String> {
    if !password_stdin {
        bail!(
            "pass the password on standard input with --password-stdin, \
             as in: printf '%s' \"$PASSWORD\" | {example} --password-stdin"
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    Ok(password)
}

fn user_command(store: &AccountStore, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            group,
            home,
            perms,
            admin,
            tls_required,
            storage,
            hosting,
            password_stdin,
        } => {
            let permissions = parse_perms(perms)?;
            let password = read_password(password_stdin, "ferry user add NAME")?;
            let login_message = hosting.login_message.as_deref().and_then(message_or_none);
            let logout_message = hosting.logout_message.as_deref().and_then(message_or_none);
            store.add_user(NewAccount {
                name: &name,
                group: group.as_deref(),
                home: home.as_deref(),
                permissions,
                admin,
                tls_required,
                storage: storage.as_deref(),
                allowed_networks: hosting.allowed_networks,
                hosts: hosting.hosts,
                login_message: login_message.as_deref(),
                logout_message: logout_message.as_deref(),
                password: &password,
            })?;
            crate::outln!("user {name} added");
        }
        UserCommand::List => {
            crate::outln!(
                "{:<24} {:<16} {:<12} {:<6} {:<8} {:<12} HOME",
                "NAME",
                "GROUP",
                "PERMS",
                "ADMIN",
                "TLS",
                "STORAGE"
            );
            for user in store.list_users()? {
                crate::outln!(
                    "{:<24} {:<16} {:<12} {:<6} {:<8} {:<12} {}",
                    user.name,
                    user.group.as_deref().unwrap_or("-"),
                    user.effective_permissions().to_string(),
                    if user.admin { "yes" } else { "no" },
                    user.effective_tls_required().map_or("-", |t| t.as_str()),
                    user.effective_storage().unwrap_or("-"),
                    user.effective_home(),
                );
            }
        }
        UserCommand::Edit {
            name,
            admin,
            no_admin,
            enable,
            disable,
            storage,
            inherit_storage,
            hosting,
            any_network,
            any_host,
        } => {
            if !(admin
                || no_admin
                || enable
                || disable
                || storage.is_some()
                || inherit_storage
                || any_network
                || any_host
                || !hosting.is_empty())
            {
                bail!(
                    "nothing to change: pass --admin, --no-admin, --enable, --disable, \
                     --storage NAME, --inherit-storage, --allowed-networks CIDR,..., \
                     --any-network, --hosts NAME,..., --any-host, --login-message TEXT or \
                     --logout-message TEXT"
                );
            }
            hosting.apply(store, &name)?;
            if any_network {
                store.set_user_allowed_networks(&name, None)?;
            }
            if any_host {
                store.set_user_hosts(&name, None)?;
            }
            if storage.is_some() || inherit_storage {
                store.set_user_storage(&name, storage.as_deref())?;
            }
            if admin || no_admin {
                store.set_user_admin(&name, admin)?;
            }
            if enable || disable {
                store.set_user_enabled(&name, enable)?;
            }
            crate::outln!("user {name} changed");
        }
        UserCommand::Del { name } => {
            store.delete_user(&name)?;
            crate::outln!("user {name} deleted (the files in its home are kept)");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin, "ferry user passwd NAME")?;
            store.set_password(&name, &password)?;
            crate::outln!("password of {name} changed");
        }
    }
    Ok(())
}

fn group_command(store: &AccountStore, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add {
            name,
            home,
            perms,
            tls_required,
            storage,
            allowed_networks,
            hosts,
        } => {
            let permissions = parse_perms(perms)?;
            store.add_group(&name, home.as_deref(), permissions)?;
            if allowed_networks.is_some() {
                store.set_group_allowed_networks(&name, allowed_networks.as_ref())?;
            }
            if hosts.is_some() {
                store.set_group_hosts(&name, hosts.as_ref())?;
            }
            if tls_required.is_some() {
                store.set_group_tls_required(&name, tls_required)?;
            }
            if storage.is_some() {
                store.set_group_storage(&name, storage.as_deref())?;
            }
            crate::outln!("group {name} added");
        }
        GroupCommand::List => {
            crate::outln!(
                "{:<24} {:<12} {:<8} {:<12} HOME",
                "NAME",
                "PERMS",
                "TLS",
                "STORAGE"
            );
            for group in store.list_groups()? {
                crate::outln!(
                    "{:<24} {:<12} {:<8} {:<12} {}",
                    group.name,
                    group.permissions.to_string(),
                    group.tls_required.map_or("-", |t| t.as_str()),
                    group.storage.as_deref().unwrap_or("-"),
                    group.home.as_deref().unwrap_or("-"),
                );
            }
        }
        GroupCommand::Del { name } => {
            store.delete_group(&name)?;
            crate::outln!("group {name} deleted");
        }
    }
    Ok(())
}

async fn serve(db_flag: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let settings = ServeSettings::resolve(&args, &file)?;
    let db = db_path(db_flag, Some(&file));
    let store = if settings.accounts_read_only {
        AccountStore::open_read_only(&db).with_context(|| {
            format!(
                "cannot open the accounts database {} read-only; make it with \
                 `ferry --db ADMIN.db accounts snapshot {}`",
                db.display(),
                db.display()
            )
        })?
    } else {
        open_store(&db)?
    };
    let store = Arc::new(store);
    let storage = open_storage(&settings.storage).await?;
    let mut named_storage = BTreeMap::new();
    for (name, spec) in &settings.named_storage {
        let provider = open_storage(spec)
            .await
            .with_context(|| format!("cannot open the storage [storage.{name}]"))?;
        named_storage.insert(name.clone(), provider);
    }
    let host_certificates: Vec<HostCertificate> = settings
        .virtual_hosts
        .iter()
        .filter_map(|host| {
            let (certfile, keyfile) = host.certificate.clone()?;
            let names = std::iter::once(&host.name).chain(&host.aliases).cloned();
            Some(HostCertificate {
                names: names.collect(),
                certfile,
                keyfile,
            })
        })
        .collect();
    let tls = match &settings.tls {
        Some(tls_settings) => Some(Arc::new(
            TlsContext::new(tls_settings.clone())?.with_host_certificates(host_certificates)?,
        )),
        None if !host_certificates.is_empty() => bail!(
            "[hosts.\"{}\"] has a certificate, but the server has none: give --certfile and \
             --keyfile (or [serve.tls]) for clients that name no host",
            host_certificates[0].names[0]
        ),
        None => None,
    };
    let listener = server::bind_listener(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    let implicit = match settings.implicit_listen {
        Some(addr) => Some(
            server::bind_listener(addr)
                .with_context(|| format!("cannot listen for implicit FTPS on {addr}"))?,
        ),
        None => None,
    };

    if store.list_users()?.is_empty() {
        warn!(
            "no FTP accounts yet; add one with: printf '%s' \"$PASSWORD\" | ferry --db {} user add NAME --password-stdin",
            db.display()
        );
    }
    let mut config = settings.server.clone();
    config.tls = tls.clone();
    for host in &settings.virtual_hosts {
        let storage = open_storage(&host.storage)
            .await
            .with_context(|| format!("cannot open the storage of [hosts.\"{}\"]", host.name))?;
        config.virtual_hosts.insert(
            VirtualHost {
                name: host.name.clone(),
                storage,
                banner: host.banner.clone(),
            },
            &host.aliases,
        );
    }
    if let Some(path) = &settings.xferlog {
        let log = XferLog::open(path)
            .with_context(|| format!("cannot open the xferlog {}", path.display()))?;
        tokio::spawn(reopen_xferlog_on_sighup(Arc::clone(&log)));
        config.xferlog = Some(log);
    }
    let server = Server::with_named_storage(
        config,
        Arc::new(SqliteAuthenticator::with_hash_cost(
            Arc::clone(&store),
            settings.password_cost,
        )),
        storage,
        named_storage,
    );
    info!(
        listen = %local,
        implicit_tls = %implicit
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "off".to_owned(), |addr| addr.to_string()),
        tls_required = settings.tls.as_ref().map_or("none", |t| t.required.as_str()),
        storage = %describe_storage(&settings.storage),
        named_storage = %settings
            .named_storage
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(","),
        db = %db.display(),
        accounts_read_only = settings.accounts_read_only,
        passive_ports = %settings.server.passive_ports,
        masquerade = %settings.server.masquerade,
        proxy_protocol_from = ?settings.server.proxy_protocol_from,
        "ferry FTP server listening"
    );
    let shutdown = Shutdown::default();
    tokio::spawn(watch_signals(shutdown.clone()));
    if let Some(tls) = tls {
        tokio::spawn(reload_certificate_on_sighup(tls));
    }
    if let Some(addr) = settings.metrics_listen {
        let http = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for /metrics on {addr}"))?;
        info!(listen = %http.local_addr()?, "serving /metrics and /healthz");
        tokio::spawn(server::serve_http(
            http,
            Arc::clone(&server),
            shutdown.clone(),
        ));
    }
    systemd::ready(&format!("accepting FTP connections on {local}"));
    tokio::spawn(systemd::keep_watchdog_fed());
    server::serve(listener, implicit, server, shutdown).await;
    info!("stopped");
    Ok(())
}

/// SIGHUP: open the xferlog's path again, as logrotate expects after moving the file.
async fn reopen_xferlog_on_sighup(log: Arc<XferLog>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; the xferlog is not reopened after rotation");
        return;
    };
    while hangup.recv().await.is_some() {
        log.reopen().await;
    }
}

/// SIGHUP: load the certificate again; new connections use it, running sessions keep theirs.
async fn reload_certificate_on_sighup(tls: Arc<TlsContext>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; certificate reloads need a restart");
        return;
    };
    while hangup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => info!("certificate reloaded"),
            Err(error) => {
                warn!(%error, "certificate reload failed; the previous certificate stays in use")
            }
        }
    }
}

/// SIGTERM or SIGINT: stop accepting and let transfers finish; a second one stops at once.
/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the service with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("stop requested");
}

async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the server with SIGKILL");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("shutdown requested; send the signal again to stop at once");
    systemd::stopping();
    shutdown.graceful.cancel();
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    shutdown.immediate.cancel();
}

impl DeployTargetArgs {
    fn request(&self, init: bool) -> Result<DeployRequest, DeployError> {
        let target = DeployTarget::parse(&self.to)?;
        let password = if self.password_stdin {
            read_password(true, "ferry deploy push")
                .map_err(|e| DeployError::Usage(format!("{e:#}")))?
        } else if let Some(password) = std::env::var("FERRY_FTP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            password
        } else if let Some(password) = target.password.clone() {
            warn!(
                "the password is in the --to URL, where other users may read it; prefer FERRY_FTP_PASSWORD or --password-stdin"
            );
            password
        } else {
            return Err(DeployError::Usage(
                "no FTP password: set FERRY_FTP_PASSWORD or pass --password-stdin".to_owned(),
            ));
        };
        let verification = match (&self.ca_file, self.insecure) {
            (Some(path), _) => Verification::CaFile(path.clone()),
            (None, true) => Verification::Insecure,
            (None, false) => Verification::SystemRoots,
        };
        let revision = match (&self.branch, &self.commit) {
            (Some(branch), _) => Revision::Branch(branch.clone()),
            (None, Some(commit)) => Revision::Commit(commit.clone()),
            (None, None) => Revision::Head,
        };
        Ok(DeployRequest {
            repo_dir: self.repo_dir.clone(),
            client: target.client_config(password, verification),
            target,
            revision,
            excludes: self.exclude.clone(),
            jobs: usize::from(self.jobs),
            init,
            forward_only: false,
            state_dir: default_state_dir(),
            retry: default_retry_policy(),
            keepalive: Duration::from_secs_f64(self.keepalive),
        })
    }
}

async fn deploy_command(db: Option<PathBuf>, command: DeployCommand) -> anyhow::Result<()> {
    match command {
        DeployCommand::Service(args) => {
            crate::deploy::service_cli::run(&db_path(db, None), args).await?;
        }
        DeployCommand::Serve(args) => deploy_serve(&db_path(db, None), args).await?,
        DeployCommand::Notify(args) => crate::deploy::notify_cli::run(&db_path(db, None), args)?,
        DeployCommand::Token(args) => crate::deploy::token_cli::run(&db_path(db, None), args)?,
        DeployCommand::Log(args) => crate::deploy::history_cli::log(&db_path(db, None), args)?,
        DeployCommand::Skip(args) => crate::deploy::history_cli::skip(&db_path(db, None), args)?,
        DeployCommand::Restore(args) => {
            crate::deploy::history_cli::restore(&db_path(db, None), args).await?;
        }
        DeployCommand::Rollback(args) => {
            crate::deploy::history_cli::rollback(&db_path(db, None), args).await?;
        }
        DeployCommand::Push {
            target,
            dry_run: true,
            init,
        } => {
            let request = target.request(init)?;
            let prepared = push::dry_run(&request).await?;
            print_state(&request, &prepared);
            crate::outln!("dry run: nothing was changed");
            for step in prepared.plan.steps() {
                crate::outln!("  {step}");
            }
            prepared.close().await;
        }
        DeployCommand::Push {
            target,
            dry_run: false,
            init,
        } => {
            let request = target.request(init)?;
            let outcome = push::push(&request).await?;
            let url = request.target.display_url();
            if outcome.up_to_date {
                crate::outln!("{url} is up to date at {}", outcome.plan.to);
            } else {
                let report = outcome.report.unwrap_or_default();
                crate::outln!(
                    "deployed {} to {url}: {} uploaded ({}), {} deleted, {} directories created, {} removed",
                    outcome.plan.to,
                    report.uploaded,
                    human_bytes(report.bytes),
                    report.deleted,
                    report.dirs_created,
                    report.dirs_removed,
                );
            }
        }
        DeployCommand::Catchup { target } => {
            let request = target.request(false)?;
            let marker = push::catchup(&request).await?;
            crate::outln!(
                "recorded {} as deployed on {} (nothing uploaded)",
                marker.commit,
                request.target.display_url()
            );
        }
        DeployCommand::Status { target } => {
            let request = target.request(false)?;
            let prepared = push::dry_run(&request).await?;
            print_state(&request, &prepared);
            prepared.close().await;
        }
    }
    Ok(())
}

async fn deploy_serve(db: &Path, args: DeployServeArgs) -> anyhow::Result<()> {
    use crate::deploy::queue::{DeployQueue, QueueConfig};
    use crate::deploy::store::ServiceStore;

    let key = args.key.load(db)?;
    let store = ServiceStore::open(db, key)
        .with_context(|| format!("cannot open the deploy database {}", db.display()))?;
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
    tokio::spawn(crate::deploy::validate::run_schedule(
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
        stop_signal(),
    )
    .await
    .context("the deploy service stopped")
}

fn print_state(request: &DeployRequest, prepared: &push::Prepared) {
    crate::outln!("target:   {}", request.target.display_url());
    match &prepared.marker {
        Some(marker) => crate::outln!(
            "deployed: {} ({} by {})",
            marker.commit,
            marker.time,
            marker.who
        ),
        None => crate::outln!("deployed: nothing (no {MARKER_NAME} on the target)"),
    }
    crate::outln!("to push:  {}", prepared.target_commit);
    if prepared.journaled > 0 {
        crate::outln!(
            "an unfinished deploy completed {} operations; a push resumes it",
            prepared.journaled
        );
    }
    if prepared.plan.is_empty() {
        crate::outln!("changes:  none");
    } else {
        crate::outln!("changes:  {}", prepared.plan.summary());
    }
}

/// Prints a line of a command's output on standard output. A reader that went away (`ferry deploy
/// log | head -1`) ends the command quietly and successfully, as it does for ripgrep, instead of
/// the panic `println!` gives on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_line(::std::format_args!($($arg)*))
    };
}

/// What [`outln!`] calls.
#[doc(hidden)]
pub fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {error}");
        std::process::exit(1);
    }
}
