//! The deploy service's store in SQLite: one view per aggregate — services, deploys (the queue
//! and the log), notification sets, access (API tokens, dashboard sessions) — over one connection,
//! with the domain types in [`super::model`].
//!
//! The tables live in the same database file as the FTP accounts, as the `deploy` component of the
//! shared [`crate::sqlite`] layer (their own schema version and migrations). Secrets — FTP
//! password, provider token, webhook secret — are sealed with the [`SecretKey`] before they are
//! written: the database alone reveals none of them. Methods are synchronous; async code calls
//! them through [`tokio::task::spawn_blocking`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rand::Rng as _;
use rand::distributions::Alphanumeric;
use rusqlite::{Connection, OptionalExtension};

use super::model::{DeployStatus, Secret, TlsVerify};
use super::secret_key::{SecretKey, SecretKeyError};
use crate::sqlite::{self, MigrateError, NameError};

pub use self::secret_places::{MovedSecret, SecretPlaces, SentSecret, moved_secrets};

mod access;
mod deploys;
mod migrations;
mod notification_sets;
mod secret_places;
mod services;
#[cfg(test)]
mod tests;

pub use self::access::{API_TOKEN_CHARS, Access};
pub use self::deploys::Deploys;
use self::migrations::SCHEMA;
pub use self::notification_sets::NotificationSets;
pub use self::services::Services;

/// SQLite's clock as an ISO 8601 UTC timestamp.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

/// The length of a service's URL key (`/hooks/KEY`), from 62 symbols: 178 bits.
pub const HOOK_KEY_CHARS: usize = 30;

/// The columns that hold sealed secrets; each name is also the seal's context.
const FTP_PASSWORD: &str = "ftp_password";
const PROVIDER_TOKEN: &str = "provider_token";
const WEBHOOK_SECRET: &str = "webhook_secret";

#[derive(Debug, thiserror::Error)]
pub enum DeployStoreError {
    #[error(
        "cannot open the database {path}: {source}; check that its directory exists and is \
         writable, or choose another file with --db"
    )]
    Open {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the database has deploy schema version {found}, newer than this ferry knows \
         ({supported}); upgrade ferry"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(transparent)]
    InvalidName(NameError),
    #[error("a service named {0} already exists; `ferry deploy service edit {0}` changes it")]
    ServiceExists(String),
    #[error("no service named {0}; `ferry deploy service list` shows them")]
    NoSuchService(String),
    #[error("a notification set named {0} already exists")]
    NotificationSetExists(String),
    #[error("no notification set named {0}; `ferry deploy notify list` shows them")]
    NoSuchNotificationSet(String),
    #[error("invalid email address {0:?}: use the form name@example.com")]
    InvalidAddress(String),
    #[error("no deploy with id {0}")]
    NoSuchDeploy(i64),
    #[error("an API token named {0} already exists; `ferry deploy token del {0}` removes it")]
    ApiTokenExists(String),
    #[error("no API token named {0}; `ferry deploy token list` shows them")]
    NoSuchApiToken(String),
    #[error(transparent)]
    InvalidTokenName(NameError),
    #[error(
        "deploy {id} is {status}; only a failed deploy can be skipped (`ferry deploy log` shows \
         the failed ones)"
    )]
    NotSkippable { id: i64, status: String },
    #[error("say why the deploy is skipped (a reason is required)")]
    SkipNeedsReason,
    #[error(
        "deploy {id} of {service} is {status}; wait until it has finished (`ferry deploy log \
         {service}` shows it), then try again"
    )]
    DeployActive {
        service: String,
        id: i64,
        status: DeployStatus,
    },
    /// An edit moved where a stored secret is sent without giving the secret again.
    #[error(
        "the {setting} changed ({from} → {to}), and the stored {secret} is only ever sent where \
         it was given: give the {secret} again with this change (or remove it)",
        setting = .0.setting, from = .0.from, to = .0.to, secret = .0.secret.describe()
    )]
    SecretMustBeGivenAgain(MovedSecret),
    /// Deploy settings a deploy could not follow (the message says what to change).
    #[error("{0}")]
    InvalidDeploySettings(String),
    #[error("invalid value stored in the database: {0}")]
    Corrupt(String),
    #[error(transparent)]
    TaskFailed(#[from] super::blocking::TaskFailed),
    #[error(transparent)]
    Secret(#[from] SecretKeyError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The deploy service's tables in one database: one view per aggregate — [`DeployStore::services`],
/// [`DeployStore::deploys`], [`DeployStore::notification_sets`], [`DeployStore::access`].
pub struct DeployStore {
    path: PathBuf,
    key: SecretKey,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for DeployStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DeployStore {
    /// Opens (creating if needed) the database at `path` and migrates its deploy tables.
    pub fn open(path: &Path, key: SecretKey) -> Result<Self, DeployStoreError> {
        let connection = sqlite::open(path).map_err(|source| DeployStoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::with_connection(path.to_owned(), connection, key)
    }

    pub fn open_in_memory(key: SecretKey) -> Result<Self, DeployStoreError> {
        Self::with_connection(
            PathBuf::from(":memory:"),
            Connection::open_in_memory()?,
            key,
        )
    }

    fn with_connection(
        path: PathBuf,
        mut connection: Connection,
        key: SecretKey,
    ) -> Result<Self, DeployStoreError> {
        sqlite::configure(&connection)?;
        sqlite::migrate(&mut connection, &SCHEMA).map_err(|e| match e {
            MigrateError::TooNew { found, supported } => {
                DeployStoreError::SchemaTooNew { found, supported }
            }
            MigrateError::Sqlite(e) => DeployStoreError::Sqlite(e),
        })?;
        Ok(DeployStore {
            path,
            key,
            connection: Mutex::new(connection),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn seal(&self, secret: Option<&Secret>, column: &str) -> Option<Vec<u8>> {
        secret.map(|s| self.key.seal(s.expose().as_bytes(), column))
    }

    pub(super) fn unseal(
        &self,
        sealed: Option<Vec<u8>>,
        column: &str,
    ) -> Result<Option<Secret>, DeployStoreError> {
        sealed
            .map(|bytes| {
                let plain = self.key.open(&bytes, column)?;
                String::from_utf8(plain)
                    .map(Secret::new)
                    .map_err(|_| DeployStoreError::Corrupt(format!("{column} is not UTF-8")))
            })
            .transpose()
    }

    pub fn services(&self) -> Services<'_> {
        Services(self)
    }

    pub fn deploys(&self) -> Deploys<'_> {
        Deploys(self)
    }

    pub fn notification_sets(&self) -> NotificationSets<'_> {
        NotificationSets(self)
    }

    pub fn access(&self) -> Access<'_> {
        Access(self)
    }
}

fn service_id(connection: &Connection, name: &str) -> Result<i64, DeployStoreError> {
    connection
        .query_row(
            "SELECT id FROM deploy_services WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))
}

fn notification_set_id(connection: &Connection, name: &str) -> Result<i64, DeployStoreError> {
    connection
        .query_row(
            "SELECT id FROM deploy_notification_sets WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| DeployStoreError::NoSuchNotificationSet(name.to_owned()))
}

/// A fresh URL key: 30 characters from a CSPRNG (the thread RNG is seeded from the OS).
/// Refuses an update that moves where a stored secret is sent without giving it again
/// ([`secret_places`]).
/// How a [`TlsVerify`] is stored: a word, and the CA file for `ca-file`.
fn tls_verify_column(verify: &TlsVerify) -> (&'static str, Option<String>) {
    match verify {
        TlsVerify::SystemRoots => ("system", None),
        TlsVerify::CaFile(path) => ("ca-file", Some(path.to_string_lossy().into_owned())),
        TlsVerify::Insecure => ("insecure", None),
    }
}

pub fn generate_hook_key() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(HOOK_KEY_CHARS)
        .map(char::from)
        .collect()
}

/// A fresh webhook secret to register with the git host.
pub fn generate_webhook_secret() -> Secret {
    Secret::new(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect::<String>(),
    )
}

fn validate_name(name: &str) -> Result<(), DeployStoreError> {
    sqlite::check_name("service", name).map_err(DeployStoreError::InvalidName)
}

/// Every address must parse as a mailbox address (`local@domain`), as the mailer will need it.
fn validate_addresses(addresses: &[String]) -> Result<(), DeployStoreError> {
    match addresses
        .iter()
        .find(|a| a.parse::<lettre::Address>().is_err())
    {
        Some(bad) => Err(DeployStoreError::InvalidAddress(bad.clone())),
        None => Ok(()),
    }
}
