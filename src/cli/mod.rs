//! The command line: `ferry serve`, `ferry user ...`, `ferry group ...`, `ferry deploy ...` —
//! parsed with clap and carried out here. The subcommand names and flags are a contract (scripts and tests drive them);
//! extend them, never rename them.

mod accounts;
mod ban;
mod certs;
mod deploy;
pub mod deploy_log;
pub mod deploy_notify;
pub mod deploy_serve;
pub mod deploy_service;
pub mod deploy_store;
pub mod deploy_token;
mod import;
pub mod output;
mod progress_line;
mod serve;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use self::accounts::{
    AccountsCommand, GroupCommand, UserCommand, group_command, open_store, user_command,
};
use self::ban::{BanCommand, ban_command};
use self::certs::CertsCommand;
use self::deploy::{DeployCommand, deploy_command};
use self::import::{ImportCommand, import_command};
use self::serve::serve;
use crate::config::{DEFAULT_DB, FileConfig, ServeArgs};
use crate::server::tls::write_development_certificate;

/// An FTP/FTPS server, FTP client and git-to-FTP deploy service.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// The accounts database (SQLite; created by the commands that add something) [default:
    /// ./ferry.db].
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
    /// Failed-login bans of the running FTP server: list them, lift them.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Certificates for FTPS.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Move a site over from another server: django-ftpserver's accounts and groups.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Mirror a git commit onto an FTP/FTPS server.
    #[command(subcommand)]
    Deploy(DeployCommand),
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
            Command::Ban(command) => ban_command(&db_path(self.db, None), command),
            Command::Import(command) => import_command(&db_path(self.db, None), command),
            Command::Deploy(command) => deploy_command(self.db, command).await,
            Command::Certs(CertsCommand::Dev { dir, force }) => {
                let existing: Vec<_> = ["cert.pem", "key.pem"]
                    .iter()
                    .map(|name| dir.join(name))
                    .filter(|path| path.exists())
                    .collect();
                if !force && !existing.is_empty() {
                    bail!(
                        "{} already exists; pass --force to replace the pair, or --dir DIR to \
                         write a new one elsewhere",
                        existing[0].display()
                    );
                }
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

/// A command line that cannot be carried out as given (a value out of range, nothing to do):
/// `ferry` exits with 2, as clap does for the errors it finds itself.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<crate::auth::InputErrors> for UsageError {
    fn from(errors: crate::auth::InputErrors) -> Self {
        Self(errors.to_string())
    }
}

fn db_path(flag: Option<PathBuf>, file: Option<&FileConfig>) -> PathBuf {
    flag.or_else(|| file.and_then(|f| f.db.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
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
