//! Accounts and groups in SQLite, and the [`Authenticator`] that logs users in against them.
//!
//! The tables follow django-ftpserver's models: a group gives its accounts a home, permissions
//! and a TLS requirement unless an account sets its own. The schema is the `accounts` component of
//! the shared [`crate::sqlite`] layer, migrated forward on [`AccountStore::open`]. Methods are synchronous
//! (SQLite and password hashing block): async code calls them through
//! [`tokio::task::spawn_blocking`], as [`SqliteAuthenticator`] does.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::checkers::PasswordCheckers;
use async_trait::async_trait;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::account_input::{AccountChanges, Setting};
use super::password::{DUMMY_HASH, HashCost, hash_password, verify_password};
use super::{
    AccountPolicy, AllowedNetworks, AuthError, Authenticator, HostList, Permissions,
    TlsRequirement, UserDetails,
};
use crate::sqlite::{self, MigrateError, NameError, Schema};

/// The accounts' part of the database (versions before the shared layer lived in `PRAGMA
/// user_version`).
const SCHEMA: Schema = Schema {
    component: "accounts",
    migrations: MIGRATIONS,
    legacy_version: |connection| connection.query_row("PRAGMA user_version", [], |row| row.get(0)),
};

/// The schema, one migration per entry: entry `i` takes the accounts from version `i` to `i + 1`.
/// Append new entries; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE groups (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        home         TEXT,
        permissions  TEXT NOT NULL,
        tls_required TEXT CHECK (tls_required IN ('none', 'control', 'data', 'all')),
        created_at   TEXT NOT NULL
    ) STRICT;

    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        group_id      INTEGER REFERENCES groups (id) ON DELETE RESTRICT,
        home          TEXT,
        -- NULL: the group's permissions, or the default without a group.
        permissions   TEXT,
        password_hash TEXT NOT NULL,
        admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
        enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        tls_required  TEXT CHECK (tls_required IN ('none', 'control', 'data', 'all')),
        created_at    TEXT NOT NULL,
        last_login    TEXT
    ) STRICT;

    CREATE INDEX accounts_group_id ON accounts (group_id);
"#,
    r#"
    -- The named storage (a [storage.NAME] table of ferry.toml) holding the files of an account
    -- or group; NULL takes the group's, else the server's.
    ALTER TABLE groups ADD COLUMN storage TEXT;
    ALTER TABLE accounts ADD COLUMN storage TEXT;
"#,
    r#"
    -- A random value replaced whenever the account's credentials change or its access is taken
    -- away (see `AccountRecord::credential_stamp`): dashboard sessions made under another stamp
    -- are over.
    ALTER TABLE accounts ADD COLUMN credential_stamp TEXT NOT NULL DEFAULT '';
    UPDATE accounts SET credential_stamp = lower(hex(randomblob(16)));
"#,
    r#"
    -- The client networks an account may log in from (CIDRs separated by commas); NULL takes
    -- the group's, and a group's NULL allows any network.
    ALTER TABLE groups ADD COLUMN allowed_networks TEXT;
    ALTER TABLE accounts ADD COLUMN allowed_networks TEXT;
    -- Shown in the 230 reply after a login and in the 221 reply to QUIT (pyftpdlib's banners).
    ALTER TABLE accounts ADD COLUMN login_message TEXT;
    ALTER TABLE accounts ADD COLUMN logout_message TEXT;
"#,
    r#"
    -- The virtual hosts (RFC 7151 HOST names, separated by commas) an account may log in on;
    -- NULL takes the group's, and a group's NULL allows every host.
    ALTER TABLE groups ADD COLUMN hosts TEXT;
    ALTER TABLE accounts ADD COLUMN hosts TEXT;
"#,
    r#"
    -- The last day (UTC, YYYY-MM-DD) an account may log in; NULL: no end.
    ALTER TABLE accounts ADD COLUMN expires_on TEXT;
    -- 0: the account may use the deploy dashboard only, never FTP.
    ALTER TABLE accounts ADD COLUMN ftp_access INTEGER NOT NULL DEFAULT 1
        CHECK (ftp_access IN (0, 1));
"#,
];

/// SQLite's clock as an ISO 8601 UTC timestamp, so no Rust date library is needed.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

/// A fresh credential stamp: 128 random bits from SQLite's generator, in hex.
const NEW_STAMP: &str = "lower(hex(randomblob(16)))";

const MAX_HOME_BYTES: usize = 4096;
const MAX_MESSAGE_BYTES: usize = 4096;

/// Why an account operation failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("invalid home {home:?}: {reason}")]
    InvalidHome { home: String, reason: &'static str },
    #[error("invalid {kind} message: {reason}")]
    InvalidMessage {
        kind: &'static str,
        reason: &'static str,
    },
    #[error(
        "user {0} already exists; use `ferry user passwd {0}` to change the password, \
         or `ferry user del {0}` first to create it anew"
    )]
    UserExists(String),
    #[error("group {0} already exists; pick another name")]
    GroupExists(String),
    #[error("no user named {0}; `ferry user list` shows the existing accounts")]
    UserNotFound(String),
    #[error("no group named {0}; create it first with `ferry group add {0}`")]
    GroupNotFound(String),
    #[error(
        "group {group} still has accounts ({}); delete them with `ferry user del NAME` \
         or move them to another group first",
        users.join(", ")
    )]
    GroupInUse { group: String, users: Vec<String> },
    #[error("invalid date {0:?}: give the last day the account may log in as YYYY-MM-DD (UTC)")]
    InvalidDate(String),
    #[error("the password is empty; give a non-empty password on standard input")]
    EmptyPassword,
    #[error(
        "the password hash is in no format ferry can verify (argon2 PHC strings and Django's \
         argon2, pbkdf2_sha256, pbkdf2_sha1, bcrypt_sha256, bcrypt and scrypt); set a new \
         password with `ferry user passwd`"
    )]
    UnrecognisedHash,
    #[error(
        "the account database has schema version {found}, newer than this ferry knows \
         ({supported}); upgrade ferry or point --db at another file"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(
        "the read-only accounts database has schema version {found}, but this ferry reads \
         version {supported}; make the copy with `ferry accounts snapshot` of this ferry version"
    )]
    SnapshotSchema { found: u32, supported: u32 },
    #[error(
        "cannot open the account database {}: {source}; check that its directory exists and \
         is writable, or choose another file with --db",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("account database error: {0}")]
    Database(#[from] rusqlite::Error),
}

/// A new account for [`AccountStore::add_user`]. `Default` leaves everything unset, so callers
/// name only what they have: `NewAccount { name, password, ..Default::default() }`.
#[derive(Clone, Default)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    /// The group to inherit home, permissions and TLS requirement from.
    pub group: Option<&'a str>,
    /// The account's own home; `None` takes the group's, else the user name.
    pub home: Option<&'a str>,
    /// The account's own permissions; `None` takes the group's, else [`Permissions::DEFAULT`].
    pub permissions: Option<Permissions>,
    pub admin: bool,
    /// The account's own TLS requirement; `None` takes the group's.
    pub tls_required: Option<TlsRequirement>,
    /// The named storage of the account's files; `None` takes the group's, else the server's.
    pub storage: Option<&'a str>,
    /// The networks the account may log in from; `None` takes the group's, else any.
    pub allowed_networks: Option<AllowedNetworks>,
    /// The virtual hosts the account may log in on; `None` takes the group's, else all.
    pub hosts: Option<HostList>,
    /// Shown with the `230` of a login and the `221` of QUIT.
    pub login_message: Option<&'a str>,
    pub logout_message: Option<&'a str>,
    /// The last day (UTC, `YYYY-MM-DD`) the account may log in; `None`: no end.
    pub expires_on: Option<&'a str>,
    /// The account may use the deploy dashboard (with `admin`) but never log in over FTP.
    pub dashboard_only: bool,
    /// The plain-text password; stored only as an argon2id hash.
    pub password: &'a str,
}

impl fmt::Debug for NewAccount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .field("admin", &self.admin)
            .field("tls_required", &self.tls_required)
            .field("storage", &self.storage)
            .field("allowed_networks", &self.allowed_networks)
            .field("hosts", &self.hosts)
            .field("login_message", &self.login_message)
            .field("logout_message", &self.logout_message)
            .field("expires_on", &self.expires_on)
            .field("dashboard_only", &self.dashboard_only)
            .finish_non_exhaustive()
    }
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub name: String,
    pub home: Option<String>,
    pub permissions: Permissions,
    pub tls_required: Option<TlsRequirement>,
    /// The named storage of the group's files; `None`: the server's.
    pub storage: Option<String>,
    /// The networks the group's accounts may log in from, unless an account has its own.
    pub allowed_networks: Option<AllowedNetworks>,
    /// The virtual hosts the group's accounts may log in on, unless an account has its own.
    pub hosts: Option<HostList>,
    /// ISO 8601 UTC.
    pub created_at: String,
    /// How many accounts belong to the group.
    pub accounts: u32,
}

/// An account as stored, with its group's settings beside its own so the effective values can be
/// worked out. The password hash is kept private and out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub name: String,
    pub group: Option<String>,
    /// The account's own home, if set.
    pub home: Option<String>,
    /// The account's own permissions, if set.
    pub permissions: Option<Permissions>,
    /// The account's own TLS requirement, if set.
    pub tls_required: Option<TlsRequirement>,
    pub admin: bool,
    pub enabled: bool,
    /// ISO 8601 UTC.
    pub created_at: String,
    /// ISO 8601 UTC of the last successful login.
    pub last_login: Option<String>,
    pub group_home: Option<String>,
    pub group_permissions: Option<Permissions>,
    pub group_tls_required: Option<TlsRequirement>,
    /// The account's own named storage, if set.
    pub storage: Option<String>,
    pub group_storage: Option<String>,
    /// The account's own allowed networks, if set.
    pub allowed_networks: Option<AllowedNetworks>,
    pub group_allowed_networks: Option<AllowedNetworks>,
    /// The account's own virtual hosts, if set.
    pub hosts: Option<HostList>,
    pub group_hosts: Option<HostList>,
    pub login_message: Option<String>,
    pub logout_message: Option<String>,
    /// The last day (UTC, `YYYY-MM-DD`) the account may log in, if it has one.
    pub expires_on: Option<String>,
    /// That day is over: the account is refused as a disabled one is.
    pub expired: bool,
    /// Whether the account may log in over FTP (else only to the dashboard, as an admin).
    pub ftp_access: bool,
    password_hash: String,
    credential_stamp: String,
}

impl AccountRecord {
    /// The account's home, else its group's, else the user name (relative to the server root).
    pub fn effective_home(&self) -> &str {
        self.home
            .as_deref()
            .or(self.group_home.as_deref())
            .unwrap_or(&self.name)
    }

    /// The account's permissions, else its group's, else [`Permissions::DEFAULT`].
    pub fn effective_permissions(&self) -> Permissions {
        self.permissions
            .or(self.group_permissions)
            .unwrap_or(Permissions::DEFAULT)
    }

    /// The account's TLS requirement, else its group's.
    pub fn effective_tls_required(&self) -> Option<TlsRequirement> {
        self.tls_required.or(self.group_tls_required)
    }

    /// The account's named storage, else its group's; `None` is the server's storage.
    pub fn effective_storage(&self) -> Option<&str> {
        self.storage.as_deref().or(self.group_storage.as_deref())
    }

    /// The account's allowed networks, else its group's; `None` allows any network.
    pub fn effective_allowed_networks(&self) -> Option<&AllowedNetworks> {
        self.allowed_networks
            .as_ref()
            .or(self.group_allowed_networks.as_ref())
    }

    /// Where the account may log in from and what it is told at login and logout.
    pub fn policy(&self) -> AccountPolicy {
        AccountPolicy {
            allowed_networks: self.effective_allowed_networks().cloned(),
            hosts: self.hosts.as_ref().or(self.group_hosts.as_ref()).cloned(),
            login_message: self.login_message.clone(),
            logout_message: self.logout_message.clone(),
            dashboard_only: !self.ftp_access,
        }
    }

    /// A random value that changes whenever the account's password changes or its admin flag
    /// or `enabled` is taken away, and differs between an account and one later made under the
    /// same name. Whatever was granted under one stamp (a dashboard session) ends with it.
    pub fn credential_stamp(&self) -> &str {
        &self.credential_stamp
    }

    /// What the server needs once this account has logged in.
    pub fn user_details(&self) -> UserDetails {
        UserDetails {
            name: self.name.clone(),
            home: self.effective_home().to_owned(),
            permissions: self.effective_permissions(),
            tls_required: self.effective_tls_required(),
            admin: self.admin,
            storage: self.effective_storage().map(str::to_owned),
            policy: self.policy(),
        }
    }
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("home", &self.home)
            .field("permissions", &self.permissions)
            .field("tls_required", &self.tls_required)
            .field("admin", &self.admin)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("last_login", &self.last_login)
            .field("group_home", &self.group_home)
            .field("group_permissions", &self.group_permissions)
            .field("group_tls_required", &self.group_tls_required)
            .field("storage", &self.storage)
            .field("group_storage", &self.group_storage)
            .field("allowed_networks", &self.allowed_networks)
            .field("group_allowed_networks", &self.group_allowed_networks)
            .field("hosts", &self.hosts)
            .field("group_hosts", &self.group_hosts)
            .field("login_message", &self.login_message)
            .field("logout_message", &self.logout_message)
            .field("expires_on", &self.expires_on)
            .field("expired", &self.expired)
            .field("ftp_access", &self.ftp_access)
            .finish_non_exhaustive()
    }
}

/// The account database: one SQLite file, shared by the server and the CLI (WAL mode lets the
/// CLI add users while the server reads).
///
/// Server nodes that share their accounts each open a copy read-only
/// ([`AccountStore::open_read_only`]): one admin database is the source, and
/// [`AccountStore::snapshot`] makes the copies that are shipped to the nodes.
pub struct AccountStore {
    path: PathBuf,
    // One connection is plenty: logins are rare next to transfers, and the hashing, the slow
    // part, happens outside the lock.
    connection: Mutex<Connection>,
    /// For a read-only copy: the version of the file the connection reads, so that a newer copy
    /// shipped over it is read from the next lookup on, without a restart.
    shipped: Option<Mutex<FileStamp>>,
}

/// Tells one version of a shipped database file from the next: a copy renamed into place has
/// another inode; one rewritten in place another size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Ok(Self {
            device,
            inode,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }
}

impl fmt::Debug for AccountStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AccountStore {
    /// Opens the database at `path`, creating it (readable by its owner only) if it does not
    /// exist, and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = sqlite::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::with_connection(path.to_owned(), connection)
    }

    /// Opens a copy of the database that this process only reads, as made by
    /// [`AccountStore::snapshot`] and shipped to each server node. Nothing is written to it:
    /// logins are not recorded and password hashes are not upgraded (the admin database does
    /// that). When a newer copy replaces the file, the next lookup reads the new one.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let stamp = FileStamp::of(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(read_only_connection(path)?),
            shipped: Some(Mutex::new(stamp)),
        })
    }

    /// Whether this store was opened with [`AccountStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shipped.is_some()
    }

    /// Writes a consistent copy of the accounts and groups to `to` for read-only server nodes:
    /// a standalone file (no `-wal` beside it, readable by its owner only), without the deploy
    /// service's tables. It appears at `to` whole, by a rename, so a node reading `to` never
    /// sees half a copy.
    pub fn snapshot(&self, to: &Path) -> Result<(), StoreError> {
        let file_name = to.file_name().ok_or_else(|| StoreError::Open {
            path: to.to_owned(),
            source: "the snapshot needs a file name".into(),
        })?;
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(file_name);
        partial_name.push(format!(".partial-{}", std::process::id()));
        let partial = to.with_file_name(partial_name);
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: to.to_owned(),
            source,
        };
        let _ = std::fs::remove_file(&partial);
        crate::private_files::create_private_file(&partial).map_err(|e| open_error(e.into()))?;
        let written = (|| -> Result<(), StoreError> {
            let target = partial
                .to_str()
                .ok_or_else(|| open_error("the path is not UTF-8".into()))?;
            self.connection().execute("VACUUM INTO ?1", [target])?;
            let copy = Connection::open(&partial)?;
            let _mode: String =
                copy.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
            let others: Vec<String> = copy
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' \
                     AND name NOT IN ('accounts', 'groups') AND name NOT LIKE 'sqlite_%'",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for table in others {
                copy.execute_batch(&format!("DROP TABLE \"{}\"", table.replace('"', "\"\"")))?;
            }
            // A copy holds the accounts alone: its header carries their schema version.
            copy.pragma_update(None, "user_version", SCHEMA.supported())?;
            copy.execute_batch("VACUUM")?;
            Ok(())
        })();
        match written.and_then(|()| std::fs::rename(&partial, to).map_err(|e| open_error(e.into())))
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// A database that lives in memory only, for tests of code that needs accounts.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_connection(PathBuf::from(":memory:"), Connection::open_in_memory()?)
    }

    fn with_connection(path: PathBuf, mut connection: Connection) -> Result<Self, StoreError> {
        sqlite::configure(&connection)?;
        sqlite::migrate(&mut connection, &SCHEMA).map_err(|e| match e {
            MigrateError::TooNew { found, supported } => {
                StoreError::SchemaTooNew { found, supported }
            }
            MigrateError::Sqlite(e) => StoreError::Database(e),
        })?;
        Ok(Self {
            path,
            connection: Mutex::new(connection),
            shipped: None,
        })
    }

    /// Where the database lives (`:memory:` for [`AccountStore::open_in_memory`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done work behind: an open transaction
        // rolls back when dropped, so the connection is still good.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(shipped) = &self.shipped {
            let mut stamp = shipped
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.read_newer_copy(&mut connection, &mut stamp);
        }
        connection
    }

    /// Switches to the file now at the store's path if it is not the one being read. A copy
    /// that cannot be read (half-shipped, another schema) is skipped with a warning, and the
    /// last good one stays in use.
    fn read_newer_copy(&self, connection: &mut Connection, stamp: &mut FileStamp) {
        let Ok(now) = FileStamp::of(&self.path) else {
            return;
        };
        if now == *stamp {
            return;
        }
        match read_only_connection(&self.path) {
            Ok(newer) => {
                *connection = newer;
                *stamp = now;
                tracing::info!(db = %self.path.display(), "read a newer copy of the accounts database");
            }
            Err(e) => {
                tracing::warn!(db = %self.path.display(), error = %e, "cannot read the new copy of the accounts database; keeping the previous one");
                // Not again for this version of the file.
                *stamp = now;
            }
        }
    }

    /// Creates a group. `perms: None` gives it [`Permissions::DEFAULT`].
    pub fn add_group(
        &self,
        name: &str,
        home: Option<&str>,
        perms: Option<Permissions>,
    ) -> Result<(), StoreError> {
        validate_name("group", name)?;
        if let Some(home) = home {
            validate_home(home)?;
        }
        let permissions = perms.unwrap_or(Permissions::DEFAULT);
        let inserted = self.connection().execute(
            &format!(
                "INSERT INTO groups (name, home, permissions, created_at) \
                 VALUES (?1, ?2, ?3, {NOW})"
            ),
            params![name, home, permissions],
        );
        match inserted {
            Err(e) if sqlite::is_unique_violation(&e) => {
                Err(StoreError::GroupExists(name.to_owned()))
            }
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    /// Every group, by name.
    pub fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT g.name, g.home, g.permissions, g.tls_required, g.created_at,
                    (SELECT COUNT(*) FROM accounts a WHERE a.group_id = g.id), g.storage,
                    g.allowed_networks, g.hosts
             FROM groups g ORDER BY g.name",
        )?;
        let groups = statement
            .query_map([], |row| {
                Ok(GroupRecord {
                    name: row.get(0)?,
                    home: row.get(1)?,
                    permissions: row.get(2)?,
                    tls_required: row.get(3)?,
                    created_at: row.get(4)?,
                    accounts: row.get(5)?,
                    storage: row.get(6)?,
                    allowed_networks: row.get(7)?,
                    hosts: row.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(groups)
    }

    /// Deletes a group that no account belongs to.
    pub fn delete_group(&self, name: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: i64 = transaction
            .query_row("SELECT id FROM groups WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::GroupNotFound(name.to_owned()))?;
        let users = transaction
            .prepare("SELECT name FROM accounts WHERE group_id = ?1 ORDER BY name")?
            .query_map([id], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        if !users.is_empty() {
            return Err(StoreError::GroupInUse {
                group: name.to_owned(),
                users,
            });
        }
        transaction.execute("DELETE FROM groups WHERE id = ?1", [id])?;
        transaction.commit()?;
        Ok(())
    }

    /// Sets or clears a group's TLS requirement.
    pub fn set_group_tls_required(
        &self,
        name: &str,
        tls_required: Option<TlsRequirement>,
    ) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            "UPDATE groups SET tls_required = ?2 WHERE name = ?1",
            params![name, tls_required],
        )?;
        if updated == 0 {
            return Err(StoreError::GroupNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Sets or clears the named storage of a group's files.
    pub fn set_group_storage(&self, name: &str, storage: Option<&str>) -> Result<(), StoreError> {
        if let Some(storage) = storage {
            validate_name("storage", storage)?;
        }
        let updated = self.connection().execute(
            "UPDATE groups SET storage = ?2 WHERE name = ?1",
            params![name, storage],
        )?;
        if updated == 0 {
            return Err(StoreError::GroupNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Sets or clears the networks a group's accounts may log in from (those without their
    /// own list).
    pub fn set_group_allowed_networks(
        &self,
        name: &str,
        networks: Option<&AllowedNetworks>,
    ) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            "UPDATE groups SET allowed_networks = ?2 WHERE name = ?1",
            params![name, networks],
        )?;
        if updated == 0 {
            return Err(StoreError::GroupNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Sets or clears the virtual hosts a group's accounts may log in on (those without their
    /// own list).
    pub fn set_group_hosts(&self, name: &str, hosts: Option<&HostList>) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            "UPDATE groups SET hosts = ?2 WHERE name = ?1",
            params![name, hosts],
        )?;
        if updated == 0 {
            return Err(StoreError::GroupNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Creates an account, storing an argon2id hash of its password.
    pub fn add_user(&self, account: NewAccount<'_>) -> Result<(), StoreError> {
        validate_name("user", account.name)?;
        validate_message("login", account.login_message)?;
        validate_message("logout", account.logout_message)?;
        if let Some(home) = account.home {
            validate_home(home)?;
        }
        if let Some(storage) = account.storage {
            validate_name("storage", storage)?;
        }
        if let Some(date) = account.expires_on {
            validate_date(date)?;
        }
        if account.password.is_empty() {
            return Err(StoreError::EmptyPassword);
        }
        // Hash before taking the lock: it is the slow part.
        let password_hash = hash_password(account.password);
        let connection = self.connection();
        let group_id = account
            .group
            .map(|group| group_id(&connection, group))
            .transpose()?;
        let inserted = connection.execute(
            &format!(
                "INSERT INTO accounts
                     (name, group_id, home, permissions, password_hash, admin, tls_required,
                      storage, created_at, credential_stamp,
                      allowed_networks, login_message, logout_message, hosts, expires_on,
                      ftp_access)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, {NEW_STAMP}, ?9, ?10, ?11, ?12,
                         ?13, ?14)"
            ),
            params![
                account.name,
                group_id,
                account.home,
                account.permissions,
                password_hash,
                account.admin,
                account.tls_required,
                account.storage,
                account.allowed_networks,
                account.login_message,
                account.logout_message,
                account.hosts,
                account.expires_on,
                !account.dashboard_only,
            ],
        );
        match inserted {
            Err(e) if sqlite::is_unique_violation(&e) => {
                Err(StoreError::UserExists(account.name.to_owned()))
            }
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    /// Every account, by name.
    pub fn list_users(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!("{SELECT_ACCOUNT} ORDER BY a.name"))?;
        let accounts = statement
            .query_map([], account_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(accounts)
    }

    /// One account, or `None` if there is no account of that name.
    pub fn get_user(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let account = self
            .connection()
            .query_row(
                &format!("{SELECT_ACCOUNT} WHERE a.name = ?1"),
                [name],
                account_from_row,
            )
            .optional()?;
        Ok(account)
    }

    /// Deletes an account.
    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let deleted = self
            .connection()
            .execute("DELETE FROM accounts WHERE name = ?1", [name])?;
        if deleted == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Replaces an account's password with an argon2id hash of `password`, and its credential
    /// stamp: what the old password opened is closed.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        if password.is_empty() {
            return Err(StoreError::EmptyPassword);
        }
        self.replace_password_hash(name, &hash_password(password))
    }

    /// Stores a password hash made elsewhere, such as the `password` column of Django's
    /// `auth_user`, so an imported account keeps its password. It is upgraded to argon2id at
    /// the next successful login.
    pub fn import_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let recognised = [
            "$argon2",
            "argon2$",
            "pbkdf2_sha256$",
            "pbkdf2_sha1$",
            "bcrypt_sha256$",
            "bcrypt$",
            "scrypt$",
        ]
        .iter()
        .any(|prefix| hash.starts_with(prefix));
        if !recognised {
            return Err(StoreError::UnrecognisedHash);
        }
        self.replace_password_hash(name, hash)
    }

    /// A new password: a new hash and a new credential stamp.
    fn replace_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            &format!(
                "UPDATE accounts SET password_hash = ?2, credential_stamp = {NEW_STAMP} \
                 WHERE name = ?1"
            ),
            [name, hash],
        )?;
        if updated == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// The same password hashed at another cost: the stamp stays, sessions go on. Only if the
    /// hash is still `verified`, so a password changed meanwhile is not put back.
    fn upgrade_password_hash(
        &self,
        name: &str,
        verified: &str,
        upgraded: &str,
    ) -> Result<(), StoreError> {
        self.connection().execute(
            "UPDATE accounts SET password_hash = ?3 WHERE name = ?1 AND password_hash = ?2",
            [name, verified, upgraded],
        )?;
        Ok(())
    }

    /// Allows or refuses logins to an account without deleting it. Refusing them also ends
    /// the account's dashboard sessions (a new credential stamp).
    pub fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        self.set_access_flag(name, "enabled", enabled)
    }

    /// Gives an account the right to use the deploy dashboard, or takes it away — and with it
    /// every session it has (a new credential stamp), so granting it again later does not bring
    /// them back.
    pub fn set_user_admin(&self, name: &str, admin: bool) -> Result<(), StoreError> {
        self.set_access_flag(name, "admin", admin)
    }

    /// Sets a flag that lets the account in (`admin`, `enabled`); clearing it replaces the
    /// credential stamp. `column` is always a literal from this file, never user input.
    fn set_access_flag(&self, name: &str, column: &str, granted: bool) -> Result<(), StoreError> {
        let stamp = if granted {
            "credential_stamp"
        } else {
            NEW_STAMP
        };
        let updated = self.connection().execute(
            &format!(
                "UPDATE accounts SET {column} = ?2, credential_stamp = {stamp} WHERE name = ?1"
            ),
            params![name, granted],
        )?;
        if updated == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Moves an account into a group, or out of any group with `None`.
    pub fn set_user_group(&self, name: &str, group: Option<&str>) -> Result<(), StoreError> {
        let connection = self.connection();
        let group_id = group.map(|g| group_id(&connection, g)).transpose()?;
        let updated = connection.execute(
            "UPDATE accounts SET group_id = ?2 WHERE name = ?1",
            params![name, group_id],
        )?;
        if updated == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Sets or clears an account's own TLS requirement.
    pub fn set_user_tls_required(
        &self,
        name: &str,
        tls_required: Option<TlsRequirement>,
    ) -> Result<(), StoreError> {
        self.update_user(name, "tls_required", &tls_required)
    }

    /// Sets or clears the named storage of an account's files (`None`: the group's, else the
    /// server's).
    pub fn set_user_storage(&self, name: &str, storage: Option<&str>) -> Result<(), StoreError> {
        if let Some(storage) = storage {
            validate_name("storage", storage)?;
        }
        self.update_user(name, "storage", &storage)
    }

    /// Sets or clears the networks an account may log in from (`None`: the group's, else any).
    pub fn set_user_allowed_networks(
        &self,
        name: &str,
        networks: Option<&AllowedNetworks>,
    ) -> Result<(), StoreError> {
        self.update_user(name, "allowed_networks", &networks)
    }

    /// Sets or clears the virtual hosts an account may log in on (`None`: the group's, else all).
    pub fn set_user_hosts(&self, name: &str, hosts: Option<&HostList>) -> Result<(), StoreError> {
        self.update_user(name, "hosts", &hosts)
    }

    /// Sets or clears the message shown with the `230` of a login.
    pub fn set_user_login_message(
        &self,
        name: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_message("login", message)?;
        self.update_user(name, "login_message", &message)
    }

    /// Sets or clears the message shown with the `221` of QUIT.
    pub fn set_user_logout_message(
        &self,
        name: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        validate_message("logout", message)?;
        self.update_user(name, "logout_message", &message)
    }

    /// Applies checked changes to an account in one transaction: all of them or none. Taking
    /// `admin` or `enabled` away, or FTP access, replaces the credential stamp (sessions end).
    pub fn update_account(&self, name: &str, changes: &AccountChanges) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = transaction
            .query_row("SELECT id FROM accounts WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        // `column` is always a literal from here, never user input.
        let set = |column: &str, value: &dyn ToSql| {
            transaction
                .execute(
                    &format!("UPDATE accounts SET {column} = ?2 WHERE name = ?1"),
                    params![name, value],
                )
                .map(drop)
        };
        match &changes.group {
            Setting::Keep => {}
            Setting::Set(group) => set("group_id", &group_id(&transaction, group)?)?,
            Setting::Clear => set("group_id", &None::<i64>)?,
        }
        fn value<T: ToSql>(setting: &Setting<T>) -> Option<Option<&T>> {
            (!setting.is_keep()).then(|| setting.new_value())
        }
        if let Some(home) = value(&changes.home) {
            if let Some(home) = home {
                validate_home(home)?;
            }
            set("home", &home)?;
        }
        if let Some(permissions) = value(&changes.permissions) {
            set("permissions", &permissions)?;
        }
        if let Some(tls_required) = value(&changes.tls_required) {
            set("tls_required", &tls_required)?;
        }
        if let Some(storage) = value(&changes.storage) {
            if let Some(storage) = storage {
                validate_name("storage", storage)?;
            }
            set("storage", &storage)?;
        }
        if let Some(date) = value(&changes.expires_on) {
            if let Some(date) = date {
                validate_date(date)?;
            }
            set("expires_on", &date)?;
        }
        for (column, granted) in [
            ("admin", changes.admin),
            ("enabled", changes.enabled),
            ("ftp_access", changes.ftp),
        ] {
            let Some(granted) = granted else { continue };
            set(column, &granted)?;
            if !granted {
                transaction.execute(
                    &format!("UPDATE accounts SET credential_stamp = {NEW_STAMP} WHERE name = ?1"),
                    [name],
                )?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Sets or clears the home shared by a group's accounts.
    pub fn set_group_home(&self, name: &str, home: Option<&str>) -> Result<(), StoreError> {
        if let Some(home) = home {
            validate_home(home)?;
        }
        self.update_group(name, "home", &home)
    }

    /// Sets a group's permissions.
    pub fn set_group_permissions(
        &self,
        name: &str,
        permissions: Permissions,
    ) -> Result<(), StoreError> {
        self.update_group(name, "permissions", &permissions)
    }

    /// `column` is always a literal from this file, never user input.
    fn update_group(&self, name: &str, column: &str, value: &dyn ToSql) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            &format!("UPDATE groups SET {column} = ?2 WHERE name = ?1"),
            params![name, value],
        )?;
        if updated == 0 {
            return Err(StoreError::GroupNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Notes a successful login now.
    pub fn record_login(&self, name: &str) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            &format!("UPDATE accounts SET last_login = {NOW} WHERE name = ?1"),
            [name],
        )?;
        if updated == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// `column` is always a literal from this file, never user input.
    fn update_user(&self, name: &str, column: &str, value: &dyn ToSql) -> Result<(), StoreError> {
        let updated = self.connection().execute(
            &format!("UPDATE accounts SET {column} = ?2 WHERE name = ?1"),
            params![name, value],
        )?;
        if updated == 0 {
            return Err(StoreError::UserNotFound(name.to_owned()));
        }
        Ok(())
    }
}

const SELECT_ACCOUNT: &str = "
    SELECT a.name, g.name, a.home, a.permissions, a.tls_required, a.admin, a.enabled,
           a.created_at, a.last_login, g.home, g.permissions, g.tls_required, a.password_hash,
           a.storage, g.storage, a.credential_stamp, a.allowed_networks, g.allowed_networks,
           a.login_message, a.logout_message, a.hosts, g.hosts, a.expires_on,
           coalesce(a.expires_on < date('now'), 0), a.ftp_access
    FROM accounts a LEFT JOIN groups g ON g.id = a.group_id";

fn account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        name: row.get(0)?,
        group: row.get(1)?,
        home: row.get(2)?,
        permissions: row.get(3)?,
        tls_required: row.get(4)?,
        admin: row.get(5)?,
        enabled: row.get(6)?,
        created_at: row.get(7)?,
        last_login: row.get(8)?,
        group_home: row.get(9)?,
        group_permissions: row.get(10)?,
        group_tls_required: row.get(11)?,
        password_hash: row.get(12)?,
        storage: row.get(13)?,
        group_storage: row.get(14)?,
        credential_stamp: row.get(15)?,
        allowed_networks: row.get(16)?,
        group_allowed_networks: row.get(17)?,
        login_message: row.get(18)?,
        logout_message: row.get(19)?,
        hosts: row.get(20)?,
        group_hosts: row.get(21)?,
        expires_on: row.get(22)?,
        expired: row.get(23)?,
        ftp_access: row.get(24)?,
    })
}

fn group_id(connection: &Connection, name: &str) -> Result<i64, StoreError> {
    connection
        .query_row("SELECT id FROM groups WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::GroupNotFound(name.to_owned()))
}

/// A connection that only reads the database at `path`, which must have this ferry's schema.
fn read_only_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(e.into()))?;
    connection
        .busy_timeout(sqlite::BUSY_TIMEOUT)
        .map_err(|e| open_error(e.into()))?;
    // A copy's header holds its schema version (see `snapshot`).
    let found: u32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| open_error(e.into()))?;
    let supported = SCHEMA.supported();
    if found != supported {
        return Err(StoreError::SnapshotSchema { found, supported });
    }
    Ok(connection)
}

fn validate_name(kind: &'static str, name: &str) -> Result<(), StoreError> {
    Ok(sqlite::check_name(kind, name)?)
}

/// Messages become lines of a reply: printable text, lines separated by `\n`.
fn validate_message(kind: &'static str, message: Option<&str>) -> Result<(), StoreError> {
    let Some(message) = message else {
        return Ok(());
    };
    let reason = if message.len() > MAX_MESSAGE_BYTES {
        Some("a message is at most 4096 bytes long")
    } else if message
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        Some("a message may hold line breaks, but no other control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidMessage { kind, reason }),
        None => Ok(()),
    }
}

/// A day as `YYYY-MM-DD` that exists in the calendar (no February 30th).
pub(crate) fn validate_date(date: &str) -> Result<(), StoreError> {
    let invalid = || StoreError::InvalidDate(date.to_owned());
    let bytes = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = date.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(invalid());
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(invalid());
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(invalid()),
    };
    if year < 1970 || day == 0 || day > days {
        return Err(invalid());
    }
    Ok(())
}

pub(crate) fn validate_home(home: &str) -> Result<(), StoreError> {
    let reason = if home.is_empty() {
        Some("a home must not be empty; leave it out to use the group's or the user name")
    } else if home.len() > MAX_HOME_BYTES {
        Some("a home is at most 4096 bytes long")
    } else if home.chars().any(char::is_control) {
        Some("a home must not contain control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidHome {
            home: home.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl ToSql for Permissions {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for Permissions {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for AllowedNetworks {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for AllowedNetworks {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

impl ToSql for HostList {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for HostList {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

impl ToSql for TlsRequirement {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for TlsRequirement {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// Logs users in against an [`AccountStore`].
#[derive(Debug, Clone)]
pub struct SqliteAuthenticator {
    pub store: Arc<AccountStore>,
    /// Where password checks run: one dedicated thread per core (see [`PasswordCheckers`]).
    checkers: Arc<PasswordCheckers>,
    /// The cost of new hashes; verified hashes of another cost are replaced with it.
    cost: HashCost,
    /// A hash of this cost that no password matches, checked for unknown users.
    dummy_hash: Arc<str>,
}

impl SqliteAuthenticator {
    /// Logs in against `store`, hashing with the default [`HashCost`].
    pub fn new(store: Arc<AccountStore>) -> Self {
        // Make the dummy hash now, at start-up, so the first login of an unknown user does not
        // take a hash longer than any other and stand out.
        Self::with_cost(
            store,
            HashCost::default(),
            Arc::from(LazyLock::force(&DUMMY_HASH).as_str()),
        )
    }

    /// Logs in against `store`, keeping password hashes at `cost` (which must be valid: see
    /// [`HashCost::params`]).
    pub fn with_hash_cost(store: Arc<AccountStore>, cost: HashCost) -> Self {
        if cost == HashCost::default() {
            return Self::new(store);
        }
        // Unknown users are checked against a hash of the same cost, so timing tells nothing.
        let unguessable: String = (0..32).map(|_| rand::random::<char>()).collect();
        Self::with_cost(store, cost, Arc::from(cost.hash(&unguessable)))
    }

    fn with_cost(store: Arc<AccountStore>, cost: HashCost, dummy_hash: Arc<str>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            store,
            checkers: Arc::new(PasswordCheckers::new(cores)),
            cost,
            dummy_hash,
        }
    }
}

#[async_trait]
impl Authenticator for SqliteAuthenticator {
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
        _peer: IpAddr,
    ) -> Result<UserDetails, AuthError> {
        let store = Arc::clone(&self.store);
        let user = user.to_owned();
        let password = password.to_owned();
        let cost = self.cost;
        let dummy_hash = Arc::clone(&self.dummy_hash);
        // Logins beyond one per core wait their turn in the checkers' queue, holding no thread.
        self.checkers
            .run(move || authenticate_blocking(&store, &user, &password, cost, &dummy_hash))
            .await
            .ok_or_else(|| AuthError::Unavailable("the password check failed".to_owned()))?
    }

    async fn account_policy(&self, user: &str) -> Option<AccountPolicy> {
        let store = Arc::clone(&self.store);
        let user = user.to_owned();
        match tokio::task::spawn_blocking(move || store.get_user(&user)).await {
            Ok(Ok(account)) => account.map(|account| account.policy()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot look up an account's login policy");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the login policy lookup failed");
                None
            }
        }
    }

    async fn check_nothing(&self, password: &str) {
        let password = password.to_owned();
        let dummy_hash = Arc::clone(&self.dummy_hash);
        let _ = self
            .checkers
            .run(move || verify_password(&dummy_hash, &password))
            .await;
    }

    async fn tls_requirement(&self, user: &str) -> Option<TlsRequirement> {
        let store = Arc::clone(&self.store);
        let user = user.to_owned();
        let account = tokio::task::spawn_blocking(move || store.get_user(&user)).await;
        match account {
            Ok(Ok(account)) => account?.effective_tls_required(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot look up an account's TLS requirement");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the TLS requirement lookup failed");
                None
            }
        }
    }
}

fn authenticate_blocking(
    store: &AccountStore,
    user: &str,
    password: &str,
    cost: HashCost,
    dummy_hash: &str,
) -> Result<UserDetails, AuthError> {
    let account = store
        .get_user(user)
        .map_err(|e| AuthError::Unavailable(e.to_string()))?;
    let Some(account) = account else {
        // Spend the same time as for a real account, so timing does not reveal user names.
        verify_password(dummy_hash, password);
        return Err(AuthError::BadCredentials);
    };
    if !verify_password(&account.password_hash, password) {
        return Err(AuthError::BadCredentials);
    }
    // Checked only after the password, so a guesser learns nothing about disabled accounts.
    if !account.enabled {
        return Err(AuthError::Disabled);
    }
    if account.expired {
        return Err(AuthError::Expired);
    }
    // A read-only copy is only read; the admin database keeps the bookkeeping.
    if store.is_read_only() {
        return Ok(account.user_details());
    }
    // Bookkeeping failures must not lock a user out whose password was right.
    if let Err(e) = store.record_login(user) {
        tracing::warn!(user, error = %e, "cannot record the login time");
    }
    if cost.needs_rehash(&account.password_hash) {
        match store.upgrade_password_hash(user, &account.password_hash, &cost.hash(password)) {
            Ok(()) => tracing::info!(
                user,
                memory_kib = cost.memory_kib,
                passes = cost.passes,
                "rehashed the password with argon2id at the configured cost"
            ),
            Err(e) => tracing::warn!(user, error = %e, "cannot upgrade the password hash"),
        }
    }
    Ok(account.user_details())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permission;

    fn temp_store() -> (tempfile::TempDir, AccountStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(&dir.path().join("ferry.db")).unwrap();
        (dir, store)
    }

    fn user<'a>(name: &'a str, password: &'a str) -> NewAccount<'a> {
        NewAccount {
            name,
            password,
            ..Default::default()
        }
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn open_creates_the_file_and_migrating_twice_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let store = AccountStore::open(&path).unwrap();
        assert!(path.exists());
        store.add_user(user("alice", "pw")).unwrap();
        drop(store);

        let reopened = AccountStore::open(&path).unwrap();
        assert_eq!(reopened.list_users().unwrap().len(), 1);
        let version = sqlite::version(&reopened.connection(), &SCHEMA).unwrap();
        assert_eq!(version, MIGRATIONS.len() as u32);
        let mode: String = reopened
            .connection()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[cfg(unix)]
    #[test]
    fn new_database_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        AccountStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        AccountStore::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE schema_versions SET version = 99 WHERE component = 'accounts'",
                [],
            )
            .unwrap();
        let err = AccountStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade ferry"), "{err}");
    }

    #[test]
    fn opening_in_a_missing_directory_says_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let err = AccountStore::open(&dir.path().join("missing/ferry.db")).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("--db"), "{err}");
    }

    #[test]
    fn add_list_and_delete_users() {
        let (_dir, store) = temp_store();
        store.add_user(user("bob", "pw")).unwrap();
        store
            .add_user(NewAccount {
                name: "alice",
                home: Some("/srv/alice"),
                permissions: Some(Permissions::READ_ONLY),
                admin: true,
                password: "pw",
                ..Default::default()
            })
            .unwrap();

        let users = store.list_users().unwrap();
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let alice = &users[0];
        assert_eq!(alice.effective_home(), "/srv/alice");
        assert_eq!(alice.effective_permissions(), Permissions::READ_ONLY);
        assert!(alice.admin && alice.enabled);
        assert_eq!(alice.last_login, None);
        assert!(alice.created_at.ends_with('Z'), "{}", alice.created_at);
        let bob = &users[1];
        assert_eq!(bob.effective_home(), "bob");
        assert_eq!(bob.effective_permissions(), Permissions::DEFAULT);
        assert!(!bob.admin);

        store.delete_user("bob").unwrap();
        assert!(store.get_user("bob").unwrap().is_none());
        assert!(matches!(
            store.delete_user("bob"),
            Err(StoreError::UserNotFound(_))
        ));
    }

    #[test]
    fn passwords_are_stored_hashed_and_never_debug_printed() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "hunter2")).unwrap();
        let alice = store.get_user("alice").unwrap().unwrap();
        assert!(alice.password_hash.starts_with("$argon2id$"));
        assert!(verify_password(&alice.password_hash, "hunter2"));
        let debug = format!("{alice:?}");
        assert!(!debug.contains("argon2"), "{debug}");
        let new = user("bob", "hunter2");
        assert!(!format!("{new:?}").contains("hunter2"));
    }

    #[test]
    fn duplicate_user_says_how_to_change_the_password() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "pw")).unwrap();
        let err = store.add_user(user("alice", "other")).unwrap_err();
        assert!(matches!(err, StoreError::UserExists(_)), "{err}");
        assert!(err.to_string().contains("ferry user passwd alice"), "{err}");
    }

    #[test]
    fn duplicate_group_is_refused() {
        let (_dir, store) = temp_store();
        store.add_group("staff", None, None).unwrap();
        let err = store.add_group("staff", None, None).unwrap_err();
        assert!(matches!(err, StoreError::GroupExists(_)), "{err}");
    }

    #[test]
    fn invalid_names_are_refused_with_the_reason() {
        let (_dir, store) = temp_store();
        let long = "x".repeat(65);
        for name in ["", "a/b", ".hidden", "tab\tname", "nul\0", " padded", &long] {
            let err = store.add_user(user(name, "pw")).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidName { .. }),
                "{name:?}: {err}"
            );
            let err = store.add_group(name, None, None).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidName { .. }),
                "{name:?}: {err}"
            );
        }
        store.add_user(user(&"é".repeat(64), "pw")).unwrap();
        store
            .add_user(user("first.last@example.com", "pw"))
            .unwrap();
        let err = store.add_user(user("a/b", "pw")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid user name \"a/b\": a name must not contain '/'"
        );
    }

    #[test]
    fn empty_password_and_empty_home_are_refused() {
        let (_dir, store) = temp_store();
        assert!(matches!(
            store.add_user(user("alice", "")),
            Err(StoreError::EmptyPassword)
        ));
        let err = store
            .add_user(NewAccount {
                home: Some(""),
                ..user("alice", "pw")
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidHome { .. }), "{err}");
        store.add_user(user("alice", "pw")).unwrap();
        assert!(matches!(
            store.set_password("alice", ""),
            Err(StoreError::EmptyPassword)
        ));
    }

    #[test]
    fn unknown_group_is_refused_with_advice() {
        let (_dir, store) = temp_store();
        let err = store
            .add_user(NewAccount {
                group: Some("staff"),
                ..user("alice", "pw")
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::GroupNotFound(_)), "{err}");
        assert!(err.to_string().contains("ferry group add staff"), "{err}");
    }

    #[test]
    fn add_list_and_delete_groups() {
        let (_dir, store) = temp_store();
        store
            .add_group("web", Some("/srv/www"), Some(Permissions::READ_ONLY))
            .unwrap();
        store.add_group("admins", None, None).unwrap();
        let groups = store.list_groups().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].name, "admins");
        assert_eq!(groups[0].permissions, Permissions::DEFAULT);
        assert_eq!(groups[0].home, None);
        assert_eq!(groups[1].name, "web");
        assert_eq!(groups[1].home.as_deref(), Some("/srv/www"));
        assert_eq!(groups[1].permissions, Permissions::READ_ONLY);
        assert_eq!(groups[1].accounts, 0);

        store.delete_group("admins").unwrap();
        assert_eq!(store.list_groups().unwrap().len(), 1);
        assert!(matches!(
            store.delete_group("admins"),
            Err(StoreError::GroupNotFound(_))
        ));
    }

    #[test]
    fn deleting_a_group_in_use_is_refused_and_names_its_accounts() {
        let (_dir, store) = temp_store();
        store.add_group("web", None, None).unwrap();
        for name in ["bob", "alice"] {
            store
                .add_user(NewAccount {
                    group: Some("web"),
                    ..user(name, "pw")
                })
                .unwrap();
        }
        assert_eq!(store.list_groups().unwrap()[0].accounts, 2);
        let err = store.delete_group("web").unwrap_err();
        assert!(matches!(err, StoreError::GroupInUse { .. }), "{err}");
        assert!(err.to_string().contains("(alice, bob)"), "{err}");

        store.delete_user("alice").unwrap();
        store.set_user_group("bob", None).unwrap();
        store.delete_group("web").unwrap();
    }

    #[test]
    fn foreign_key_restricts_group_deletion_even_behind_our_back() {
        let (_dir, store) = temp_store();
        store.add_group("web", None, None).unwrap();
        store
            .add_user(NewAccount {
                group: Some("web"),
                ..user("alice", "pw")
            })
            .unwrap();
        let result = store
            .connection()
            .execute("DELETE FROM groups WHERE name = 'web'", []);
        assert!(result.is_err());
    }

    #[test]
    fn account_inherits_home_permissions_and_tls_from_its_group() {
        let (_dir, store) = temp_store();
        store
            .add_group("web", Some("/srv/www"), Some(Permissions::READ_ONLY))
            .unwrap();
        store
            .set_group_tls_required("web", Some(TlsRequirement::All))
            .unwrap();
        store
            .add_user(NewAccount {
                group: Some("web"),
                ..user("alice", "pw")
            })
            .unwrap();
        store
            .add_user(NewAccount {
                group: Some("web"),
                home: Some("bob-site"),
                permissions: Some("elrw".parse().unwrap()),
                tls_required: Some(TlsRequirement::Control),
                ..user("bob", "pw")
            })
            .unwrap();

        let alice = store.get_user("alice").unwrap().unwrap().user_details();
        assert_eq!(alice.home, "/srv/www");
        assert_eq!(alice.permissions, Permissions::READ_ONLY);
        assert_eq!(alice.tls_required, Some(TlsRequirement::All));

        let bob = store.get_user("bob").unwrap().unwrap().user_details();
        assert_eq!(bob.home, "bob-site");
        assert!(bob.permissions.contains(Permission::Store));
        assert_eq!(bob.tls_required, Some(TlsRequirement::Control));

        store.set_user_group("alice", None).unwrap();
        let alice = store.get_user("alice").unwrap().unwrap().user_details();
        assert_eq!(alice.home, "alice");
        assert_eq!(alice.permissions, Permissions::DEFAULT);
        assert_eq!(alice.tls_required, None);
    }

    #[test]
    fn record_login_sets_last_login() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "pw")).unwrap();
        store.record_login("alice").unwrap();
        let last_login = store.get_user("alice").unwrap().unwrap().last_login;
        assert!(last_login.is_some_and(|t| t.ends_with('Z')));
        assert!(matches!(
            store.record_login("nobody"),
            Err(StoreError::UserNotFound(_))
        ));
    }

    #[test]
    fn set_password_replaces_the_hash() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "old")).unwrap();
        store.set_password("alice", "new").unwrap();
        let hash = store.get_user("alice").unwrap().unwrap().password_hash;
        assert!(verify_password(&hash, "new"));
        assert!(!verify_password(&hash, "old"));
        assert!(matches!(
            store.set_password("nobody", "pw"),
            Err(StoreError::UserNotFound(_))
        ));
    }

    #[test]
    fn import_refuses_hashes_that_could_never_verify() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "pw")).unwrap();
        // Django's salted MD5 and unsalted SHA-1 hashers are not verified (nor worth verifying).
        for hash in [
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
            "sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            "!unusable",
            "plain",
        ] {
            assert!(matches!(
                store.import_password_hash("alice", hash),
                Err(StoreError::UnrecognisedHash)
            ));
        }
    }

    #[test]
    fn the_credential_stamp_changes_with_the_password_and_when_access_is_taken_away() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "pw")).unwrap();
        let stamp = || store.get_user("alice").unwrap().unwrap().credential_stamp;
        let first = stamp();
        assert_eq!(first.len(), 32, "{first:?}");

        // Granting, re-granting and other edits keep it.
        store.set_user_admin("alice", true).unwrap();
        store.set_user_enabled("alice", true).unwrap();
        store.set_user_storage("alice", Some("disk")).unwrap();
        store.record_login("alice").unwrap();
        assert_eq!(stamp(), first);

        let mut seen = vec![first];
        let changes: [&dyn Fn(); 4] = [
            &|| store.set_password("alice", "new pw").unwrap(),
            &|| store.set_user_admin("alice", false).unwrap(),
            &|| store.set_user_enabled("alice", false).unwrap(),
            &|| {
                store
                    .import_password_hash("alice", &hash_password("imported"))
                    .unwrap()
            },
        ];
        for change in changes {
            change();
            let now = stamp();
            assert!(!seen.contains(&now), "{now} again");
            seen.push(now);
        }
        // The same name made again is another account.
        store.delete_user("alice").unwrap();
        store.add_user(user("alice", "pw")).unwrap();
        assert!(!seen.contains(&stamp()));
    }

    #[tokio::test]
    async fn a_rehash_at_login_keeps_the_stamp_and_never_puts_an_old_password_back() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "pw")).unwrap();
        let store = Arc::new(store);
        let account = store.get_user("alice").unwrap().unwrap();
        let cheaper = HashCost {
            memory_kib: 8 * 1024,
            passes: 1,
        };
        let auth = SqliteAuthenticator::with_hash_cost(Arc::clone(&store), cheaper);
        auth.authenticate("alice", "pw", PEER).await.unwrap();
        let rehashed = store.get_user("alice").unwrap().unwrap();
        assert_ne!(rehashed.password_hash, account.password_hash);
        assert_eq!(rehashed.credential_stamp, account.credential_stamp);

        // A rehash of a hash that changed meanwhile does nothing.
        store.set_password("alice", "changed").unwrap();
        store
            .upgrade_password_hash("alice", &account.password_hash, &cheaper.hash("pw"))
            .unwrap();
        assert!(auth.authenticate("alice", "changed", PEER).await.is_ok());
        assert!(auth.authenticate("alice", "pw", PEER).await.is_err());
    }

    #[test]
    fn allowed_networks_come_from_the_account_else_its_group() {
        let (_dir, store) = temp_store();
        store.add_group("office", None, None).unwrap();
        let office: AllowedNetworks = "192.0.2.0/24".parse().unwrap();
        store
            .set_group_allowed_networks("office", Some(&office))
            .unwrap();
        store
            .add_user(NewAccount {
                group: Some("office"),
                login_message: Some("Hello.\nSecond line."),
                ..user("clerk", "pw")
            })
            .unwrap();
        let own: AllowedNetworks = "10.0.0.1".parse().unwrap();
        store
            .add_user(NewAccount {
                group: Some("office"),
                allowed_networks: Some(own.clone()),
                ..user("boss", "pw")
            })
            .unwrap();
        let clerk = store.get_user("clerk").unwrap().unwrap().policy();
        assert_eq!(clerk.allowed_networks, Some(office.clone()));
        assert_eq!(clerk.login_message.as_deref(), Some("Hello.\nSecond line."));
        let boss = store.get_user("boss").unwrap().unwrap().policy();
        assert_eq!(boss.allowed_networks, Some(own));
        assert_eq!(
            store.list_groups().unwrap()[0].allowed_networks,
            Some(office)
        );

        store.set_user_allowed_networks("boss", None).unwrap();
        store.set_user_logout_message("boss", Some("Bye.")).unwrap();
        let boss = store.get_user("boss").unwrap().unwrap().policy();
        assert_eq!(boss.allowed_networks, clerk.allowed_networks);
        assert_eq!(boss.logout_message.as_deref(), Some("Bye."));
        store.set_group_allowed_networks("office", None).unwrap();
        assert_eq!(
            store
                .get_user("clerk")
                .unwrap()
                .unwrap()
                .policy()
                .allowed_networks,
            None
        );

        let error = store
            .set_user_login_message("boss", Some("ring \u{7}"))
            .unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidMessage { .. }),
            "{error}"
        );
        assert!(matches!(
            store.set_user_allowed_networks("nobody", None),
            Err(StoreError::UserNotFound(_))
        ));
    }

    #[test]
    fn in_memory_store_works_for_other_modules_tests() {
        let store = AccountStore::open_in_memory().unwrap();
        store.add_user(user("alice", "pw")).unwrap();
        assert!(store.get_user("alice").unwrap().is_some());
    }

    fn authenticator(store: AccountStore) -> SqliteAuthenticator {
        SqliteAuthenticator::new(Arc::new(store))
    }

    #[tokio::test]
    async fn right_password_gives_the_user_details() {
        let (_dir, store) = temp_store();
        store.add_group("web", Some("/srv/www"), None).unwrap();
        store
            .add_user(NewAccount {
                group: Some("web"),
                permissions: Some(Permissions::READ_ONLY),
                admin: true,
                ..user("alice", "s3cret")
            })
            .unwrap();
        let auth = authenticator(store);
        let details = auth.authenticate("alice", "s3cret", PEER).await.unwrap();
        assert_eq!(
            details,
            UserDetails {
                name: "alice".into(),
                home: "/srv/www".into(),
                permissions: Permissions::READ_ONLY,
                tls_required: None,
                admin: true,
                storage: None,
                policy: AccountPolicy::default(),
            }
        );
        let account = auth.store.get_user("alice").unwrap().unwrap();
        assert!(account.last_login.is_some());
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_are_both_bad_credentials() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "s3cret")).unwrap();
        let auth = authenticator(store);
        assert!(matches!(
            auth.authenticate("alice", "wrong", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.authenticate("mallory", "s3cret", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.authenticate("../etc", "", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        let account = auth.store.get_user("alice").unwrap().unwrap();
        assert_eq!(account.last_login, None);
    }

    #[tokio::test]
    async fn disabled_account_is_reported_only_with_the_right_password() {
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "s3cret")).unwrap();
        store.set_user_enabled("alice", false).unwrap();
        let auth = authenticator(store);
        assert!(matches!(
            auth.authenticate("alice", "wrong", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.authenticate("alice", "s3cret", PEER).await,
            Err(AuthError::Disabled)
        ));
        auth.store.set_user_enabled("alice", true).unwrap();
        assert!(auth.authenticate("alice", "s3cret", PEER).await.is_ok());
    }

    #[tokio::test]
    async fn login_upgrades_an_imported_django_hash_to_argon2id() {
        // From Django 5.2's `make_password('s3cret', hasher='pbkdf2_sha256')`.
        const DJANGO_PBKDF2_SHA256: &str = "pbkdf2_sha256$1000000$kcdkOwkosYQWmWosH6MPvv$\
            EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=";
        let (_dir, store) = temp_store();
        store.add_user(user("alice", "placeholder")).unwrap();
        store
            .import_password_hash("alice", DJANGO_PBKDF2_SHA256)
            .unwrap();
        let auth = authenticator(store);

        assert!(matches!(
            auth.authenticate("alice", "wrong", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        let stored = auth.store.get_user("alice").unwrap().unwrap().password_hash;
        assert_eq!(
            stored, DJANGO_PBKDF2_SHA256,
            "a failed login must not rehash"
        );

        auth.authenticate("alice", "s3cret", PEER).await.unwrap();
        let upgraded = auth.store.get_user("alice").unwrap().unwrap().password_hash;
        assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
        assert!(!HashCost::default().needs_rehash(&upgraded));
        auth.authenticate("alice", "s3cret", PEER).await.unwrap();
    }

    #[tokio::test]
    async fn a_configured_hash_cost_replaces_other_costs_at_login() {
        let cheap = HashCost {
            memory_kib: 64,
            passes: 1,
        };
        let (_dir, store) = temp_store();
        // Hashed at the default cost by `user add`.
        store.add_user(user("alice", "s3cret")).unwrap();
        let auth = SqliteAuthenticator::with_hash_cost(Arc::new(store), cheap);
        assert!(matches!(
            auth.authenticate("nobody", "s3cret", PEER).await,
            Err(AuthError::BadCredentials)
        ));
        auth.authenticate("alice", "s3cret", PEER).await.unwrap();
        let rehashed = auth.store.get_user("alice").unwrap().unwrap().password_hash;
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{rehashed}"
        );
        auth.authenticate("alice", "s3cret", PEER).await.unwrap();
        assert!(matches!(
            auth.authenticate("alice", "wrong", PEER).await,
            Err(AuthError::BadCredentials)
        ));
    }

    #[tokio::test]
    async fn tls_requirement_is_looked_up_without_a_password() {
        let (_dir, store) = temp_store();
        store.add_group("secure", None, None).unwrap();
        store
            .set_group_tls_required("secure", Some(TlsRequirement::Data))
            .unwrap();
        store
            .add_user(NewAccount {
                group: Some("secure"),
                ..user("alice", "pw")
            })
            .unwrap();
        store.add_user(user("bob", "pw")).unwrap();
        let auth = authenticator(store);
        assert_eq!(
            auth.tls_requirement("alice").await,
            Some(TlsRequirement::Data)
        );
        assert_eq!(auth.tls_requirement("bob").await, None);
        assert_eq!(auth.tls_requirement("nobody").await, None);
        auth.store
            .set_user_tls_required("bob", Some(TlsRequirement::All))
            .unwrap();
        assert_eq!(auth.tls_requirement("bob").await, Some(TlsRequirement::All));
    }

    #[test]
    fn storage_is_the_accounts_else_the_groups_else_none() {
        let (_dir, store) = temp_store();
        store.add_group("archive", None, None).unwrap();
        store.set_group_storage("archive", Some("cold")).unwrap();
        store
            .add_user(NewAccount {
                group: Some("archive"),
                ..user("alice", "pw")
            })
            .unwrap();
        store
            .add_user(NewAccount {
                group: Some("archive"),
                storage: Some("hot"),
                ..user("bob", "pw")
            })
            .unwrap();
        store.add_user(user("carol", "pw")).unwrap();
        let storage = |name: &str| {
            let account = store.get_user(name).unwrap().unwrap();
            account.user_details().storage
        };
        assert_eq!(storage("alice").as_deref(), Some("cold"));
        assert_eq!(storage("bob").as_deref(), Some("hot"));
        assert_eq!(storage("carol"), None);

        store.set_user_storage("bob", None).unwrap();
        assert_eq!(storage("bob").as_deref(), Some("cold"));
        store.set_user_storage("carol", Some("hot")).unwrap();
        assert_eq!(storage("carol").as_deref(), Some("hot"));
        let groups = store.list_groups().unwrap();
        assert_eq!(groups[0].storage.as_deref(), Some("cold"));

        assert!(matches!(
            store.set_user_storage("carol", Some("../x")),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.set_group_storage("nogroup", Some("cold")),
            Err(StoreError::GroupNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_read_only_copy_logs_in_writes_nothing_and_follows_newer_copies() {
        let (dir, store) = temp_store();
        store.add_user(user("alice", "first pw")).unwrap();
        // A deploy table in the admin database stays out of the copy.
        store
            .connection()
            .execute_batch("CREATE TABLE deploy_schema (version INTEGER)")
            .unwrap();
        let shipped = dir.path().join("node.db");
        store.snapshot(&shipped).unwrap();
        assert!(!dir.path().join("node.db-wal").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&shipped).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the copy holds password hashes");
        }
        let tables: Vec<String> = Connection::open(&shipped)
            .unwrap()
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["accounts", "groups"]);

        let node = authenticator(AccountStore::open_read_only(&shipped).unwrap());
        assert!(node.store.is_read_only());
        let before = std::fs::read(&shipped).unwrap();
        node.authenticate("alice", "first pw", PEER).await.unwrap();
        assert_eq!(
            std::fs::read(&shipped).unwrap(),
            before,
            "a login wrote to the read-only copy"
        );
        assert!(matches!(
            node.authenticate("bob", "bob pw", PEER).await,
            Err(AuthError::BadCredentials)
        ));

        // The admin adds bob and changes alice's password, and ships a new copy.
        store.add_user(user("bob", "bob pw")).unwrap();
        store.set_password("alice", "second pw").unwrap();
        store.snapshot(&shipped).unwrap();
        node.authenticate("bob", "bob pw", PEER).await.unwrap();
        node.authenticate("alice", "second pw", PEER).await.unwrap();
        assert!(matches!(
            node.authenticate("alice", "first pw", PEER).await,
            Err(AuthError::BadCredentials)
        ));

        // A broken copy shipped over it is skipped; the last good one stays in use.
        let broken = dir.path().join("broken.db");
        std::fs::write(&broken, b"not a database").unwrap();
        std::fs::rename(&broken, &shipped).unwrap();
        node.authenticate("bob", "bob pw", PEER).await.unwrap();
    }

    #[test]
    fn a_read_only_copy_of_another_schema_is_refused_with_advice() {
        let (dir, _store) = temp_store();
        let old = dir.path().join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA user_version = 1")
            .unwrap();
        let err = AccountStore::open_read_only(&old).unwrap_err();
        assert!(err.to_string().contains("ferry accounts snapshot"), "{err}");
        let missing = AccountStore::open_read_only(&dir.path().join("missing.db")).unwrap_err();
        assert!(matches!(missing, StoreError::Open { .. }), "{missing}");
    }
}
