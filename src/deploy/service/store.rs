//! Deploy services, their deploys and notification sets, in SQLite.
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
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde::Serialize;

use super::secret_key::{SecretKey, SecretKeyError};
use super::webhook::{BranchPattern, Provider, PushCommit};
use crate::deploy::engine::target::DeployTarget;
use crate::sqlite::{self, MigrateError, NameError, Schema};

mod access;
mod overview;
mod secret_places;

pub use self::access::{API_TOKEN_CHARS, ApiToken, Session};
pub use self::history::{DeployFilter, DeployKind, ServiceStats, SkipRecord};
pub use self::overview::DeployCounts;
pub use self::secret_places::{MovedSecret, SecretPlaces, SentSecret, moved_secrets};

/// The deploy service's part of the database (versions before the shared layer lived in the
/// `deploy_schema` table).
const SCHEMA: Schema = Schema {
    component: "deploy",
    migrations: MIGRATIONS,
    legacy_version: legacy_deploy_version,
};

fn legacy_deploy_version(connection: &Connection) -> rusqlite::Result<u32> {
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'deploy_schema'",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    connection.query_row("SELECT version FROM deploy_schema", [], |row| row.get(0))
}

/// The schema, one migration per entry: entry `i` takes the deploy schema from `i` to `i + 1`.
/// Append new entries; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE deploy_notification_sets (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        -- JSON arrays of addresses.
        success_emails  TEXT NOT NULL DEFAULT '[]',
        failure_emails  TEXT NOT NULL DEFAULT '[]',
        notify_pusher   INTEGER NOT NULL DEFAULT 0 CHECK (notify_pusher IN (0, 1)),
        notify_authors  INTEGER NOT NULL DEFAULT 0 CHECK (notify_authors IN (0, 1)),
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    ) STRICT;

    CREATE TABLE deploy_services (
        id                   INTEGER PRIMARY KEY,
        name                 TEXT NOT NULL UNIQUE,
        repo_url             TEXT NOT NULL,
        provider             TEXT NOT NULL
                             CHECK (provider IN ('github', 'bitbucket', 'gitea', 'gitlab', 'git')),
        branch               TEXT NOT NULL,
        -- ftp://user@host:port/path, never with a password.
        target_url           TEXT NOT NULL,
        tls_verify           TEXT NOT NULL DEFAULT 'system'
                             CHECK (tls_verify IN ('system', 'ca-file', 'insecure')),
        tls_ca_file          TEXT,
        -- Sealed with the secret key (see secret_key.rs); NULL when not set.
        ftp_password         BLOB,
        provider_token       BLOB,
        webhook_secret       BLOB,
        hook_key             TEXT NOT NULL UNIQUE,
        notification_set_id  INTEGER REFERENCES deploy_notification_sets (id) ON DELETE SET NULL,
        enabled              INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        last_deployed_commit TEXT,
        validation_ok        INTEGER CHECK (validation_ok IN (0, 1)),
        validation_message   TEXT,
        validated_at         TEXT,
        created_at           TEXT NOT NULL,
        updated_at           TEXT NOT NULL
    ) STRICT;

    CREATE TABLE deploy_deploys (
        id             INTEGER PRIMARY KEY,
        service_id     INTEGER NOT NULL REFERENCES deploy_services (id) ON DELETE CASCADE,
        status         TEXT NOT NULL
                       CHECK (status IN ('queued', 'running', 'ok', 'failed', 'skipped')),
        branch         TEXT,
        commit_from    TEXT,
        commit_to      TEXT NOT NULL,
        delivery_id    TEXT,
        -- Who pushed (or ran the deploy by hand).
        user           TEXT,
        queued_at      TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT,
        files_added    INTEGER NOT NULL DEFAULT 0,
        files_modified INTEGER NOT NULL DEFAULT 0,
        files_removed  INTEGER NOT NULL DEFAULT 0,
        bytes          INTEGER NOT NULL DEFAULT 0,
        error          TEXT,
        -- JSON array of {id, message, author, author_email, timestamp}.
        commits        TEXT NOT NULL DEFAULT '[]'
    ) STRICT;

    CREATE INDEX deploy_deploys_service ON deploy_deploys (service_id, id);
    -- A host retries a delivery with the same id: it must not deploy twice. One Bitbucket
    -- delivery may update several branches a glob matches: each commit deploys once.
    CREATE UNIQUE INDEX deploy_deploys_delivery
        ON deploy_deploys (service_id, delivery_id, commit_to)
        WHERE delivery_id IS NOT NULL;
"#,
    r#"
    -- API tokens and dashboard sessions (see store/access.rs): only SHA-256 hashes of the
    -- token and of the session id are kept.
    CREATE TABLE deploy_api_tokens (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        token_sha256 BLOB NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT
    ) STRICT;

    CREATE TABLE deploy_sessions (
        id_sha256  BLOB PRIMARY KEY,
        user       TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) STRICT;
"#,
    r#"
    -- Why a deploy was queued, who skipped a failed one and why, and which deploy restored it.
    ALTER TABLE deploy_deploys ADD COLUMN kind TEXT NOT NULL DEFAULT 'push'
        CHECK (kind IN ('push', 'restore', 'rollback'));
    ALTER TABLE deploy_deploys ADD COLUMN skipped_by TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN skip_reason TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN skipped_at TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN restored_by INTEGER;
"#,
    // The pusher's address when the webhook gave one (for notifications).
    "ALTER TABLE deploy_deploys ADD COLUMN user_email TEXT;",
    r#"
    -- The git host's REST API root for webhook checks and registration (GitHub Enterprise,
    -- self-hosted Gitea or GitLab); NULL: the provider's default for the repository's host.
    ALTER TABLE deploy_services ADD COLUMN api_url TEXT;
    -- The last validation's checks: a JSON array of {name, ok, message}.
    ALTER TABLE deploy_services ADD COLUMN validation_checks TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
    -- After which deploys the pusher and the commit authors are mailed (replacing the 0/1
    -- columns, which are kept in step for older readers).
    ALTER TABLE deploy_notification_sets ADD COLUMN pusher_when TEXT NOT NULL DEFAULT 'never'
        CHECK (pusher_when IN ('never', 'success', 'failure', 'always'));
    ALTER TABLE deploy_notification_sets ADD COLUMN authors_when TEXT NOT NULL DEFAULT 'never'
        CHECK (authors_when IN ('never', 'success', 'failure', 'always'));
    UPDATE deploy_notification_sets SET
        pusher_when = CASE notify_pusher WHEN 1 THEN 'always' ELSE 'never' END,
        authors_when = CASE notify_authors WHEN 1 THEN 'always' ELSE 'never' END;
"#,
    r#"
    -- A push deploys its branch's tip, recorded in commit_to once known, so a delivery is
    -- told apart by the branch it updates, not by the commit it named.
    DROP INDEX deploy_deploys_delivery;
    CREATE UNIQUE INDEX deploy_deploys_delivery
        ON deploy_deploys (service_id, delivery_id, coalesce(branch, ''))
        WHERE delivery_id IS NOT NULL;
"#,
    r#"
    -- The account's credential stamp when the session began (accounts.credential_stamp): once
    -- the account's stamp differs, the session is over. Sessions from before have none and end.
    ALTER TABLE deploy_sessions ADD COLUMN credential_stamp TEXT NOT NULL DEFAULT '';
"#,
];

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
    #[error("invalid value stored in the database: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Secret(#[from] SecretKeyError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A secret in memory: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the target's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    SystemRoots,
    CaFile(PathBuf),
    Insecure,
}

impl TlsVerify {
    fn column(&self) -> (&'static str, Option<String>) {
        match self {
            TlsVerify::SystemRoots => ("system", None),
            TlsVerify::CaFile(path) => ("ca-file", Some(path.to_string_lossy().into_owned())),
            TlsVerify::Insecure => ("insecure", None),
        }
    }

    /// The client's setting for this choice.
    pub fn to_client(&self) -> crate::client::Verification {
        match self {
            TlsVerify::SystemRoots => crate::client::Verification::SystemRoots,
            TlsVerify::CaFile(path) => crate::client::Verification::CaFile(path.clone()),
            TlsVerify::Insecure => crate::client::Verification::Insecure,
        }
    }
}

/// The outcome of the last validation of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub ok: bool,
    pub message: String,
    pub at: String,
    /// Each check, in the order it ran (empty for a validation stored as one message).
    pub checks: Vec<ValidationCheck>,
}

/// One check of a validation run and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ValidationCheck {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// A service as stored, without its secrets (only whether each is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub repo_url: String,
    pub provider: Provider,
    pub branch: BranchPattern,
    pub target: DeployTarget,
    pub tls_verify: TlsVerify,
    pub hook_key: String,
    pub notification_set: Option<String>,
    pub enabled: bool,
    pub has_ftp_password: bool,
    pub has_provider_token: bool,
    pub has_webhook_secret: bool,
    pub last_deployed_commit: Option<String>,
    pub last_validation: Option<Validation>,
    /// The git host's API root, when set for this service (else the provider's default).
    pub api_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Service {
    /// The webhook path the service answers on.
    pub fn hook_path(&self) -> String {
        format!("/hooks/{}", self.hook_key)
    }
}

/// The decrypted secrets of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSecrets {
    pub ftp_password: Option<Secret>,
    pub provider_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

/// A service to add.
#[derive(Debug, Clone)]
pub struct NewService {
    pub name: String,
    pub repo_url: String,
    pub provider: Provider,
    pub branch: BranchPattern,
    pub target: DeployTarget,
    pub tls_verify: TlsVerify,
    pub notification_set: Option<String>,
    pub secrets: ServiceSecrets,
    /// The git host's API root, when not the provider's default.
    pub api_url: Option<String>,
}

/// A change to a service: `None` leaves a field as it is. For secrets, `Some(None)` clears one.
#[derive(Debug, Clone, Default)]
pub struct ServiceUpdate {
    pub repo_url: Option<String>,
    pub provider: Option<Provider>,
    pub branch: Option<BranchPattern>,
    pub target: Option<DeployTarget>,
    pub tls_verify: Option<TlsVerify>,
    pub notification_set: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub ftp_password: Option<Option<Secret>>,
    pub provider_token: Option<Option<Secret>>,
    pub webhook_secret: Option<Option<Secret>>,
    /// The git host's API root (`Some(None)`: the provider's default).
    pub api_url: Option<Option<String>>,
    /// Issue a new URL key (the old hook URL stops working).
    pub new_hook_key: bool,
}

/// Where a deploy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    Queued,
    Running,
    Ok,
    Failed,
    Skipped,
}

impl DeployStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::Running => "running",
            DeployStatus::Ok => "ok",
            DeployStatus::Failed => "failed",
            DeployStatus::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Result<Self, DeployStoreError> {
        Ok(match text {
            "queued" => DeployStatus::Queued,
            "running" => DeployStatus::Running,
            "ok" => DeployStatus::Ok,
            "failed" => DeployStatus::Failed,
            "skipped" => DeployStatus::Skipped,
            other => {
                return Err(DeployStoreError::Corrupt(format!(
                    "deploy status {other:?}"
                )));
            }
        })
    }
}

/// A deploy to queue.
#[derive(Debug, Clone, Default)]
pub struct NewDeploy {
    pub branch: Option<String>,
    pub commit_from: Option<String>,
    pub commit_to: String,
    pub delivery_id: Option<String>,
    pub user: Option<String>,
    /// The pusher's email address, when the webhook gave one.
    pub user_email: Option<String>,
    pub commits: Vec<PushCommit>,
}

/// File and byte counts of a finished deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeployStats {
    pub files_added: u64,
    pub files_modified: u64,
    pub files_removed: u64,
    pub bytes: u64,
}

/// One deploy, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub service: String,
    pub status: DeployStatus,
    pub branch: Option<String>,
    pub commit_from: Option<String>,
    pub commit_to: String,
    pub delivery_id: Option<String>,
    pub user: Option<String>,
    pub user_email: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stats: DeployStats,
    pub error: Option<String>,
    pub commits: Vec<PushCommit>,
    /// Why it was queued.
    pub kind: DeployKind,
    /// Seconds from start to end, once it has ended.
    pub duration_secs: Option<i64>,
    /// Who skipped this failed deploy, why and when.
    pub skipped: Option<SkipRecord>,
    /// The deploy that restored this failed one.
    pub restored_by: Option<i64>,
}

/// Who hears about deploys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationSet {
    pub name: String,
    pub success_emails: Vec<String>,
    pub failure_emails: Vec<String>,
    /// Also the person who pushed, after these deploys.
    pub notify_pusher: NotifyWhen,
    /// Also the authors of the deployed commits, after these deploys.
    pub notify_authors: NotifyWhen,
}

/// After which deploys a set mails the pusher or the commit authors. Written `never`,
/// `success`, `failure` or `always`; `true` and `false` are read as `always` and `never`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyWhen {
    #[default]
    Never,
    Success,
    Failure,
    Always,
}

impl NotifyWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyWhen::Never => "never",
            NotifyWhen::Success => "success",
            NotifyWhen::Failure => "failure",
            NotifyWhen::Always => "always",
        }
    }

    /// Whether a deploy that ended `ok` (or not) is one of these.
    pub fn includes(self, ok: bool) -> bool {
        match self {
            NotifyWhen::Never => false,
            NotifyWhen::Success => ok,
            NotifyWhen::Failure => !ok,
            NotifyWhen::Always => true,
        }
    }
}

impl From<bool> for NotifyWhen {
    fn from(flag: bool) -> Self {
        if flag {
            NotifyWhen::Always
        } else {
            NotifyWhen::Never
        }
    }
}

impl std::str::FromStr for NotifyWhen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "never" => NotifyWhen::Never,
            "success" => NotifyWhen::Success,
            "failure" => NotifyWhen::Failure,
            "always" => NotifyWhen::Always,
            other => {
                return Err(format!(
                    "{other:?} is not one of never, success, failure, always"
                ));
            }
        })
    }
}

impl<'de> serde::Deserialize<'de> for NotifyWhen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Word(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(flag) => Ok(flag.into()),
            Written::Word(word) => word.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::fmt::Display for NotifyWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to a notification set: `None` leaves a field as it is; the lists are replaced whole.
#[derive(Debug, Clone, Default)]
pub struct NotificationSetUpdate {
    pub success_emails: Option<Vec<String>>,
    pub failure_emails: Option<Vec<String>>,
    pub notify_pusher: Option<NotifyWhen>,
    pub notify_authors: Option<NotifyWhen>,
}

/// The deploy tables of one database.
pub struct ServiceStore {
    path: PathBuf,
    key: SecretKey,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for ServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ServiceStore {
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
        Ok(ServiceStore {
            path,
            key,
            connection: Mutex::new(connection),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn seal(&self, secret: Option<&Secret>, column: &str) -> Option<Vec<u8>> {
        secret.map(|s| self.key.seal(s.expose().as_bytes(), column))
    }

    fn unseal(
        &self,
        sealed: Option<Vec<u8>>,
        column: &str,
    ) -> Result<Option<Secret>, DeployStoreError> {
        sealed
            .map(|bytes| {
                let plain = self.key.open(&bytes, column)?;
                String::from_utf8(plain)
                    .map(Secret)
                    .map_err(|_| DeployStoreError::Corrupt(format!("{column} is not UTF-8")))
            })
            .transpose()
    }

    // ---- services ----

    pub fn add_service(&self, new: &NewService) -> Result<Service, DeployStoreError> {
        validate_name(&new.name)?;
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let set_id = match &new.notification_set {
            Some(set) => Some(notification_set_id(&tx, set)?),
            None => None,
        };
        let (tls_verify, tls_ca_file) = new.tls_verify.column();
        let result = tx.execute(
            &format!(
                "INSERT INTO deploy_services (name, repo_url, provider, branch, target_url,
                     tls_verify, tls_ca_file, ftp_password, provider_token, webhook_secret,
                     hook_key, notification_set_id, api_url, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW}, {NOW})"
            ),
            params![
                new.name,
                new.repo_url,
                new.provider.as_str(),
                new.branch.as_str(),
                new.target.to_string(),
                tls_verify,
                tls_ca_file,
                self.seal(new.secrets.ftp_password.as_ref(), FTP_PASSWORD),
                self.seal(new.secrets.provider_token.as_ref(), PROVIDER_TOKEN),
                self.seal(new.secrets.webhook_secret.as_ref(), WEBHOOK_SECRET),
                generate_hook_key(),
                set_id,
                new.api_url,
            ],
        );
        match result {
            Ok(_) => {}
            Err(e) if sqlite::is_unique_violation(&e) => {
                return Err(DeployStoreError::ServiceExists(new.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit()?;
        drop(connection);
        self.service(&new.name)
    }

    pub fn update_service(
        &self,
        name: &str,
        update: &ServiceUpdate,
    ) -> Result<Service, DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: i64 = tx
            .query_row(
                "SELECT id FROM deploy_services WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))?;
        check_secret_places(&tx, id, update)?;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!("UPDATE deploy_services SET {column} = ?1 WHERE id = ?2"),
                params![value, id],
            )
        };
        if let Some(repo) = &update.repo_url {
            set("repo_url", repo)?;
        }
        if let Some(provider) = update.provider {
            set("provider", &provider.as_str())?;
        }
        if let Some(branch) = &update.branch {
            set("branch", &branch.as_str())?;
        }
        if let Some(target) = &update.target {
            set("target_url", &target.to_string())?;
        }
        if let Some(tls) = &update.tls_verify {
            let (verify, ca_file) = tls.column();
            set("tls_verify", &verify)?;
            set("tls_ca_file", &ca_file)?;
        }
        if let Some(notification_set) = &update.notification_set {
            let set_id = match notification_set {
                Some(set) => Some(notification_set_id(&tx, set)?),
                None => None,
            };
            set("notification_set_id", &set_id)?;
        }
        if let Some(enabled) = update.enabled {
            set("enabled", &enabled)?;
        }
        for (column, value) in [
            (FTP_PASSWORD, &update.ftp_password),
            (PROVIDER_TOKEN, &update.provider_token),
            (WEBHOOK_SECRET, &update.webhook_secret),
        ] {
            if let Some(secret) = value {
                set(column, &self.seal(secret.as_ref(), column))?;
            }
        }
        if let Some(api_url) = &update.api_url {
            set("api_url", api_url)?;
        }
        if update.new_hook_key {
            set("hook_key", &generate_hook_key())?;
        }
        tx.execute(
            &format!("UPDATE deploy_services SET updated_at = {NOW} WHERE id = ?1"),
            [id],
        )?;
        tx.commit()?;
        drop(connection);
        self.service(name)
    }

    pub fn delete_service(&self, name: &str) -> Result<(), DeployStoreError> {
        let deleted = self
            .lock()
            .execute("DELETE FROM deploy_services WHERE name = ?1", [name])?;
        if deleted == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        Ok(())
    }

    pub fn service(&self, name: &str) -> Result<Service, DeployStoreError> {
        self.find_service("s.name = ?1", name)?
            .ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))
    }

    /// The service a webhook URL key belongs to.
    pub fn service_by_hook_key(&self, key: &str) -> Result<Option<Service>, DeployStoreError> {
        self.find_service("s.hook_key = ?1", key)
    }

    pub fn list_services(&self) -> Result<Vec<Service>, DeployStoreError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare(&format!("{SERVICE_SELECT} ORDER BY s.name COLLATE NOCASE"))?;
        let rows = statement.query_map([], read_service)?;
        rows.map(|row| row?).collect()
    }

    fn find_service(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Option<Service>, DeployStoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("{SERVICE_SELECT} WHERE {condition}"),
                [value],
                read_service,
            )
            .optional()?
            .transpose()
    }

    /// The service's secrets, decrypted.
    pub fn service_secrets(&self, name: &str) -> Result<ServiceSecrets, DeployStoreError> {
        type Sealed = Option<Vec<u8>>;
        let sealed: Option<(Sealed, Sealed, Sealed)> = self
            .lock()
            .query_row(
                "SELECT ftp_password, provider_token, webhook_secret
                 FROM deploy_services WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let (ftp, token, webhook) =
            sealed.ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))?;
        Ok(ServiceSecrets {
            ftp_password: self.unseal(ftp, FTP_PASSWORD)?,
            provider_token: self.unseal(token, PROVIDER_TOKEN)?,
            webhook_secret: self.unseal(webhook, WEBHOOK_SECRET)?,
        })
    }

    /// Stores the outcome of a validation run, stamped with the current time.
    pub fn record_validation(
        &self,
        name: &str,
        ok: bool,
        message: &str,
    ) -> Result<(), DeployStoreError> {
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_services
                 SET validation_ok = ?1, validation_message = ?2, validation_checks = '[]',
                     validated_at = {NOW}
                 WHERE name = ?3"
            ),
            params![ok, message, name],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        Ok(())
    }

    /// Stores a validation run's checks, stamped with the current time: the service's
    /// validation is ok when every check is, and its message names the failed ones.
    pub fn record_validation_checks(
        &self,
        name: &str,
        checks: &[ValidationCheck],
    ) -> Result<Validation, DeployStoreError> {
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        let message = if failed.is_empty() {
            "all checks passed".to_owned()
        } else {
            failed.join("; ")
        };
        let json = serde_json::to_string(checks)
            .map_err(|e| DeployStoreError::Corrupt(format!("validation checks: {e}")))?;
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_services
                 SET validation_ok = ?1, validation_message = ?2, validation_checks = ?3,
                     validated_at = {NOW}
                 WHERE name = ?4"
            ),
            params![failed.is_empty(), message, json, name],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        self.service(name)?
            .last_validation
            .ok_or_else(|| DeployStoreError::Corrupt("the validation was not stored".into()))
    }

    // ---- deploys ----

    /// Queues a deploy. `None` when the service already has one for this delivery id and
    /// branch (a host retrying a delivery).
    pub fn queue_deploy(
        &self,
        service: &str,
        new: &NewDeploy,
    ) -> Result<Option<i64>, DeployStoreError> {
        let commits = serde_json::to_string(&new.commits)
            .map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let result = connection.execute(
            &format!(
                "INSERT INTO deploy_deploys (service_id, status, branch, commit_from, commit_to,
                     delivery_id, user, queued_at, commits, user_email)
                 VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, {NOW}, ?7, ?8)"
            ),
            params![
                service_id,
                new.branch,
                new.commit_from,
                new.commit_to,
                new.delivery_id,
                new.user,
                commits,
                new.user_email
            ],
        );
        match result {
            Ok(_) => Ok(Some(connection.last_insert_rowid())),
            Err(e) if sqlite::is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the commit a running push deploy really deploys (its branch's tip, which may be
    /// newer than, or other than, what its webhook named) and the commits it brings.
    pub fn settle_deploy_commit(
        &self,
        id: i64,
        commit: &str,
        commits: &[PushCommit],
    ) -> Result<(), DeployStoreError> {
        let commits =
            serde_json::to_string(commits).map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
        let changed = self.lock().execute(
            "UPDATE deploy_deploys SET commit_to = ?1, commits = ?2 WHERE id = ?3",
            params![commit, commits, id],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        Ok(())
    }

    /// Marks a queued deploy as running, stamped with the current time.
    pub fn start_deploy(&self, id: i64) -> Result<(), DeployStoreError> {
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_deploys SET status = 'running', started_at = {NOW}
                 WHERE id = ?1 AND status = 'queued'"
            ),
            [id],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        Ok(())
    }

    /// Records how a deploy ended; a successful one becomes the service's last deployed commit.
    pub fn finish_deploy(
        &self,
        id: i64,
        status: DeployStatus,
        stats: DeployStats,
        error: Option<&str>,
    ) -> Result<(), DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let changed = tx.execute(
            &format!(
                "UPDATE deploy_deploys SET status = ?1, finished_at = {NOW}, files_added = ?2,
                     files_modified = ?3, files_removed = ?4, bytes = ?5, error = ?6
                 WHERE id = ?7"
            ),
            params![
                status.as_str(),
                to_i64(stats.files_added),
                to_i64(stats.files_modified),
                to_i64(stats.files_removed),
                to_i64(stats.bytes),
                error,
                id
            ],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        if status == DeployStatus::Ok {
            tx.execute(
                "UPDATE deploy_services SET last_deployed_commit =
                     (SELECT commit_to FROM deploy_deploys WHERE id = ?1)
                 WHERE id = (SELECT service_id FROM deploy_deploys WHERE id = ?1)",
                [id],
            )?;
            history::mark_restored(&tx, id)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn deploy(&self, id: i64) -> Result<Deploy, DeployStoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("{DEPLOY_SELECT} WHERE d.id = ?1"),
                [id],
                read_deploy,
            )
            .optional()?
            .transpose()?
            .ok_or(DeployStoreError::NoSuchDeploy(id))
    }

    /// The newest `limit` deploys of a service, newest first.
    pub fn list_deploys(&self, service: &str, limit: u32) -> Result<Vec<Deploy>, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let mut statement = connection.prepare(&format!(
            "{DEPLOY_SELECT} WHERE d.service_id = ?1 ORDER BY d.id DESC LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![service_id, limit], read_deploy)?;
        rows.map(|row| row?).collect()
    }

    // ---- the queue (see `queue.rs`) ----

    /// Puts deploys a crash left `running` back in the queue; their journal makes them resume.
    /// Returns how many there were.
    pub fn requeue_interrupted(&self) -> Result<usize, DeployStoreError> {
        Ok(self.lock().execute(
            "UPDATE deploy_deploys SET status = 'queued', started_at = NULL
             WHERE status = 'running'",
            [],
        )?)
    }

    /// The services with queued deploys, by name.
    pub fn services_with_queued_deploys(&self) -> Result<Vec<String>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT DISTINCT s.name FROM deploy_deploys d
             JOIN deploy_services s ON s.id = d.service_id
             WHERE d.status = 'queued' ORDER BY s.name",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes the service's newest queued deploy and marks it running; older queued ones are
    /// coalesced into it (marked skipped, their commits carried over). `None` when nothing is
    /// queued.
    pub fn claim_next_deploy(&self, service: &str) -> Result<Option<Deploy>, DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let service_id = service_id(&tx, service)?;
        let queued: Vec<(i64, String)> = {
            let mut statement = tx.prepare(
                "SELECT id, commits FROM deploy_deploys
                 WHERE service_id = ?1 AND status = 'queued' ORDER BY id",
            )?;
            let rows = statement.query_map([service_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let Some(((newest, _), older)) = queued.split_last() else {
            return Ok(None);
        };
        if !older.is_empty() {
            let mut commits: Vec<PushCommit> = Vec::new();
            for (_, json) in queued.iter() {
                let more: Vec<PushCommit> = serde_json::from_str(json)
                    .map_err(|e| DeployStoreError::Corrupt(format!("deploy commits: {e}")))?;
                for commit in more {
                    if !commits.iter().any(|c| c.id == commit.id) {
                        commits.push(commit);
                    }
                }
            }
            let commits = serde_json::to_string(&commits)
                .map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE deploy_deploys SET commits = ?1 WHERE id = ?2",
                params![commits, newest],
            )?;
            history::carry_restore(&tx, *newest, older.iter().map(|(id, _)| *id))?;
            for (id, _) in older {
                tx.execute(
                    &format!(
                        "UPDATE deploy_deploys SET status = 'skipped', finished_at = {NOW},
                             error = ?1 WHERE id = ?2"
                    ),
                    params![
                        format!("superseded by the newer push of deploy {newest}"),
                        id
                    ],
                )?;
            }
        }
        tx.execute(
            &format!(
                "UPDATE deploy_deploys SET status = 'running', started_at = {NOW} WHERE id = ?1"
            ),
            [newest],
        )?;
        let deploy = tx.query_row(
            &format!("{DEPLOY_SELECT} WHERE d.id = ?1"),
            [newest],
            read_deploy,
        )??;
        tx.commit()?;
        Ok(Some(deploy))
    }

    // ---- notification sets ----

    pub fn add_notification_set(&self, set: &NotificationSet) -> Result<(), DeployStoreError> {
        validate_name(&set.name)?;
        validate_addresses(&set.success_emails)?;
        validate_addresses(&set.failure_emails)?;
        let result = self.lock().execute(
            &format!(
                "INSERT INTO deploy_notification_sets (name, success_emails, failure_emails,
                     notify_pusher, notify_authors, pusher_when, authors_when, created_at,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, {NOW})"
            ),
            params![
                set.name,
                to_json(&set.success_emails),
                to_json(&set.failure_emails),
                set.notify_pusher != NotifyWhen::Never,
                set.notify_authors != NotifyWhen::Never,
                set.notify_pusher.as_str(),
                set.notify_authors.as_str(),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if sqlite::is_unique_violation(&e) => {
                Err(DeployStoreError::NotificationSetExists(set.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn notification_set(&self, name: &str) -> Result<NotificationSet, DeployStoreError> {
        self.lock()
            .query_row(
                "SELECT name, success_emails, failure_emails, pusher_when, authors_when
                 FROM deploy_notification_sets WHERE name = ?1",
                [name],
                read_notification_set,
            )
            .optional()?
            .transpose()?
            .ok_or_else(|| DeployStoreError::NoSuchNotificationSet(name.to_owned()))
    }

    pub fn list_notification_sets(&self) -> Result<Vec<NotificationSet>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT name, success_emails, failure_emails, pusher_when, authors_when
             FROM deploy_notification_sets ORDER BY name",
        )?;
        let rows = statement.query_map([], read_notification_set)?;
        rows.map(|row| row?).collect()
    }

    /// Changes a set; the result is the set as stored.
    pub fn update_notification_set(
        &self,
        name: &str,
        update: &NotificationSetUpdate,
    ) -> Result<NotificationSet, DeployStoreError> {
        for list in [&update.success_emails, &update.failure_emails]
            .into_iter()
            .flatten()
        {
            validate_addresses(list)?;
        }
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = notification_set_id(&tx, name)?;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!(
                    "UPDATE deploy_notification_sets SET {column} = ?1, updated_at = {NOW}
                     WHERE id = ?2"
                ),
                params![value, id],
            )
        };
        if let Some(list) = &update.success_emails {
            set("success_emails", &to_json(list))?;
        }
        if let Some(list) = &update.failure_emails {
            set("failure_emails", &to_json(list))?;
        }
        for (when, flag_column, column) in [
            (update.notify_pusher, "notify_pusher", "pusher_when"),
            (update.notify_authors, "notify_authors", "authors_when"),
        ] {
            if let Some(when) = when {
                set(column, &when.as_str())?;
                set(flag_column, &(when != NotifyWhen::Never))?;
            }
        }
        tx.commit()?;
        drop(connection);
        self.notification_set(name)
    }

    /// Deletes a set; services that used it notify nobody until given another.
    pub fn delete_notification_set(&self, name: &str) -> Result<(), DeployStoreError> {
        let deleted = self.lock().execute(
            "DELETE FROM deploy_notification_sets WHERE name = ?1",
            [name],
        )?;
        if deleted == 0 {
            return Err(DeployStoreError::NoSuchNotificationSet(name.to_owned()));
        }
        Ok(())
    }
}

const SERVICE_SELECT: &str = "
    SELECT s.id, s.name, s.repo_url, s.provider, s.branch, s.target_url, s.tls_verify,
           s.tls_ca_file, s.hook_key, n.name, s.enabled, s.ftp_password IS NOT NULL,
           s.provider_token IS NOT NULL, s.webhook_secret IS NOT NULL, s.last_deployed_commit,
           s.validation_ok, s.validation_message, s.validated_at, s.created_at, s.updated_at,
           s.api_url, s.validation_checks
    FROM deploy_services s
    LEFT JOIN deploy_notification_sets n ON n.id = s.notification_set_id";

/// A service row; the outer `Result` is SQLite's, the inner one says whether the values parse.
fn read_service(row: &Row<'_>) -> rusqlite::Result<Result<Service, DeployStoreError>> {
    let provider: String = row.get(3)?;
    let branch: String = row.get(4)?;
    let target: String = row.get(5)?;
    let tls_verify: String = row.get(6)?;
    let tls_ca_file: Option<String> = row.get(7)?;
    let validation_ok: Option<bool> = row.get(15)?;
    let validation = match validation_ok {
        Some(ok) => Some(Validation {
            ok,
            message: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
            at: row.get::<_, Option<String>>(17)?.unwrap_or_default(),
            checks: serde_json::from_str(&row.get::<_, String>(21)?).unwrap_or_default(),
        }),
        None => None,
    };
    let service = (|| {
        let corrupt = DeployStoreError::Corrupt;
        Ok(Service {
            id: row.get(0)?,
            name: row.get(1)?,
            repo_url: row.get(2)?,
            provider: provider.parse().map_err(corrupt)?,
            branch: branch.parse().map_err(corrupt)?,
            target: target.parse().map_err(corrupt)?,
            tls_verify: match (tls_verify.as_str(), tls_ca_file) {
                ("system", _) => TlsVerify::SystemRoots,
                ("insecure", _) => TlsVerify::Insecure,
                ("ca-file", Some(path)) => TlsVerify::CaFile(PathBuf::from(path)),
                (other, _) => return Err(corrupt(format!("tls_verify {other:?}"))),
            },
            hook_key: row.get(8)?,
            notification_set: row.get(9)?,
            enabled: row.get(10)?,
            has_ftp_password: row.get(11)?,
            has_provider_token: row.get(12)?,
            has_webhook_secret: row.get(13)?,
            last_deployed_commit: row.get(14)?,
            last_validation: validation,
            api_url: row.get(20)?,
            created_at: row.get(18)?,
            updated_at: row.get(19)?,
        })
    })();
    Ok(service)
}

const DEPLOY_SELECT: &str = "
    SELECT d.id, s.name, d.status, d.branch, d.commit_from, d.commit_to, d.delivery_id, d.user,
           d.queued_at, d.started_at, d.finished_at, d.files_added, d.files_modified,
           d.files_removed, d.bytes, d.error, d.commits, d.kind,
           CAST(round((julianday(d.finished_at) - julianday(d.started_at)) * 86400) AS INTEGER),
           d.skipped_by, d.skip_reason, d.skipped_at, d.restored_by, d.user_email
    FROM deploy_deploys d JOIN deploy_services s ON s.id = d.service_id";

fn read_deploy(row: &Row<'_>) -> rusqlite::Result<Result<Deploy, DeployStoreError>> {
    let status: String = row.get(2)?;
    let commits: String = row.get(16)?;
    let kind: String = row.get(17)?;
    let skipped_by: Option<String> = row.get(19)?;
    let skip_reason: Option<String> = row.get(20)?;
    let skipped_at: Option<String> = row.get(21)?;
    let count = |i| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let stats = DeployStats {
        files_added: count(11)?,
        files_modified: count(12)?,
        files_removed: count(13)?,
        bytes: count(14)?,
    };
    let parsed = (|| {
        Ok(Deploy {
            id: row.get(0)?,
            service: row.get(1)?,
            status: DeployStatus::parse(&status)?,
            branch: row.get(3)?,
            commit_from: row.get(4)?,
            commit_to: row.get(5)?,
            delivery_id: row.get(6)?,
            user: row.get(7)?,
            user_email: row.get(23)?,
            queued_at: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            stats,
            error: row.get(15)?,
            commits: serde_json::from_str(&commits)
                .map_err(|e| DeployStoreError::Corrupt(format!("deploy commits: {e}")))?,
            kind: DeployKind::parse(&kind)?,
            duration_secs: row.get(18)?,
            skipped: skipped_by.map(|by| SkipRecord {
                by,
                reason: skip_reason.unwrap_or_default(),
                at: skipped_at.unwrap_or_default(),
            }),
            restored_by: row.get(22)?,
        })
    })();
    Ok(parsed)
}

fn read_notification_set(
    row: &Row<'_>,
) -> rusqlite::Result<Result<NotificationSet, DeployStoreError>> {
    let success: String = row.get(1)?;
    let failure: String = row.get(2)?;
    let parse = |text: &str| {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| DeployStoreError::Corrupt(format!("notification addresses: {e}")))
    };
    let name: String = row.get(0)?;
    let pusher: String = row.get(3)?;
    let authors: String = row.get(4)?;
    Ok((|| {
        Ok(NotificationSet {
            name,
            success_emails: parse(&success)?,
            failure_emails: parse(&failure)?,
            notify_pusher: pusher.parse().map_err(DeployStoreError::Corrupt)?,
            notify_authors: authors.parse().map_err(DeployStoreError::Corrupt)?,
        })
    })())
}

fn to_json(addresses: &[String]) -> String {
    serde_json::to_string(addresses).expect("a list of strings serialises")
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
fn check_secret_places(
    tx: &Transaction<'_>,
    id: i64,
    update: &ServiceUpdate,
) -> Result<(), DeployStoreError> {
    let (target, repo_url, provider, api_url, has_password, has_token): (
        String,
        String,
        String,
        Option<String>,
        bool,
        bool,
    ) = tx.query_row(
        "SELECT target_url, repo_url, provider, api_url, ftp_password IS NOT NULL,
                provider_token IS NOT NULL
         FROM deploy_services WHERE id = ?1",
        [id],
        |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        },
    )?;
    let before = SecretPlaces {
        target: target.parse().map_err(DeployStoreError::Corrupt)?,
        repo_url,
        provider: provider.parse().map_err(DeployStoreError::Corrupt)?,
        api_url,
    };
    let after = SecretPlaces {
        target: update
            .target
            .clone()
            .unwrap_or_else(|| before.target.clone()),
        repo_url: update
            .repo_url
            .clone()
            .unwrap_or_else(|| before.repo_url.clone()),
        provider: update.provider.unwrap_or(before.provider),
        api_url: update
            .api_url
            .clone()
            .unwrap_or_else(|| before.api_url.clone()),
    };
    for moved in moved_secrets(&before, &after) {
        let (stored, given) = match moved.secret {
            SentSecret::FtpPassword => (has_password, update.ftp_password.is_some()),
            SentSecret::ProviderToken => (has_token, update.provider_token.is_some()),
        };
        if stored && !given {
            return Err(DeployStoreError::SecretMustBeGivenAgain(moved));
        }
    }
    Ok(())
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
    Secret(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect(),
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

mod history;
#[cfg(test)]
mod tests;
