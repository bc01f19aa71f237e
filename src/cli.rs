//! The command line: `ferry serve`, `ferry user ...`, `ferry group ...` — parsed with clap and
//! carried out here. The subcommand names and flags are a contract (scripts and tests drive them);
//! extend them, never rename them.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use crate::auth::store::{AccountStore, NewAccount};
use crate::auth::{Permissions, SqliteAuthenticator};
use crate::config::{DEFAULT_DB, FileConfig, ServeArgs, ServeSettings};
use crate::server::tls::write_development_certificate;
use crate::server::{self, Server, Shutdown, TlsContext};
use crate::storage::fs::FsProvider;
use crate::systemd;

/// An FTP/FTPS server, FTP client and git-to-FTP deploy service.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// The accounts database (SQLite; created if missing).
    #[arg(long, global = true, value_name = "FILE", env = "FERRY_DB")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
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
    /// Certificates for FTPS.
    #[command(subcommand)]
    Certs(CertsCommand),
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
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
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
    },
    /// List groups.
    List,
    /// Delete a group that no account uses.
    Del { name: String },
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(self.db, *args).await,
            Command::User(command) => {
                let store = open_store(&db_path(self.db, None))?;
                user_command(&store, command)
            }
            Command::Group(command) => {
                let store = open_store(&db_path(self.db, None))?;
                group_command(&store, command)
            }
            Command::Certs(CertsCommand::Dev { dir }) => {
                let (cert, key) = write_development_certificate(&dir).with_context(|| {
                    format!("cannot write a certificate into {}", dir.display())
                })?;
                println!("wrote {} and {}", cert.display(), key.display());
                println!("for development only: clients cannot verify this certificate");
                Ok(())
            }
        }
    }
}

fn db_path(flag: Option<PathBuf>, file: Option<&FileConfig>) -> PathBuf {
    flag.or_else(|| file.and_then(|f| f.db.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

fn open_store(path: &Path) -> anyhow::Result<AccountStore> {
    AccountStore::open(path)
        .with_context(|| format!("cannot open the accounts database {}", path.display()))
}

fn parse_perms(letters: Option<String>) -> anyhow::Result<Option<Permissions>> {
    letters
        .map(|l| l.parse::<Permissions>().map_err(anyhow::Error::msg))
        .transpose()
}

/// The first line of standard input, without its line ending.
fn read_password(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!(
            "pass the password on standard input with --password-stdin, \
             as in: printf '%s' \"$PASSWORD\" | ferry user add NAME --password-stdin"
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
            password_stdin,
        } => {
            let permissions = parse_perms(perms)?;
            let password = read_password(password_stdin)?;
            store.add_user(NewAccount {
                name: &name,
                group: group.as_deref(),
                home: home.as_deref(),
                permissions,
                admin,
                tls_required: None,
                password: &password,
            })?;
            println!("user {name} added");
        }
        UserCommand::List => {
            println!(
                "{:<24} {:<16} {:<12} {:<6} HOME",
                "NAME", "GROUP", "PERMS", "ADMIN"
            );
            for user in store.list_users()? {
                println!(
                    "{:<24} {:<16} {:<12} {:<6} {}",
                    user.name,
                    user.group.as_deref().unwrap_or("-"),
                    user.effective_permissions().to_string(),
                    if user.admin { "yes" } else { "no" },
                    user.effective_home(),
                );
            }
        }
        UserCommand::Del { name } => {
            store.delete_user(&name)?;
            println!("user {name} deleted (the files in its home are kept)");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            store.set_password(&name, &password)?;
            println!("password of {name} changed");
        }
    }
    Ok(())
}

fn group_command(store: &AccountStore, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add { name, home, perms } => {
            let permissions = parse_perms(perms)?;
            store.add_group(&name, home.as_deref(), permissions)?;
            println!("group {name} added");
        }
        GroupCommand::List => {
            println!("{:<24} {:<12} HOME", "NAME", "PERMS");
            for group in store.list_groups()? {
                println!(
                    "{:<24} {:<12} {}",
                    group.name,
                    group.permissions.to_string(),
                    group.home.as_deref().unwrap_or("-"),
                );
            }
        }
        GroupCommand::Del { name } => {
            store.delete_group(&name)?;
            println!("group {name} deleted");
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
    let store = Arc::new(open_store(&db)?);
    std::fs::create_dir_all(&settings.root).with_context(|| {
        format!(
            "cannot create the FTP root directory {}",
            settings.root.display()
        )
    })?;
    let root = std::fs::canonicalize(&settings.root)
        .with_context(|| format!("cannot open the FTP root {}", settings.root.display()))?;
    let tls = match &settings.tls {
        Some(tls_settings) => Some(Arc::new(TlsContext::new(tls_settings.clone())?)),
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
    let server = Server::new(
        config,
        Arc::new(SqliteAuthenticator::new(Arc::clone(&store))),
        Arc::new(FsProvider::new(root.clone())),
    );
    info!(
        listen = %local,
        implicit_tls = ?implicit.as_ref().and_then(|l| l.local_addr().ok()),
        tls_required = settings.tls.as_ref().map_or("none", |t| t.required.as_str()),
        root = %root.display(),
        db = %db.display(),
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
    systemd::ready(&format!("accepting FTP connections on {local}"));
    tokio::spawn(systemd::keep_watchdog_fed());
    server::serve(listener, implicit, server, shutdown).await;
    info!("stopped");
    Ok(())
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
