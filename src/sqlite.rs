//! The SQLite layer the account store and the deploy store share: how a database file is opened
//! (readable by its owner only, WAL, a busy timeout, foreign keys), one migration runner over one
//! schema-version table, and the one rule for names. Nothing here knows what the tables hold.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

/// How long a statement waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest name of anything stored (an account, a group, a service, a token, a storage).
pub const MAX_NAME_CHARS: usize = 64;

/// A part of the database with its own tables and migrations: the accounts, the deploy service.
#[derive(Debug)]
pub struct Schema {
    /// Its key in the `schema_versions` table.
    pub component: &'static str,
    /// One migration per entry: entry `i` takes the component from version `i` to `i + 1`.
    /// Append new entries; never edit one that has shipped.
    pub migrations: &'static [&'static str],
    /// Where the component kept its version before `schema_versions` existed; read once, when it
    /// has no row there yet.
    pub legacy_version: fn(&Connection) -> rusqlite::Result<u32>,
}

impl Schema {
    /// The version the migrations lead to.
    pub fn supported(&self) -> u32 {
        self.migrations.len() as u32
    }
}

/// Why a schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A newer ferry wrote this database.
    #[error("schema version {found} is newer than this ferry knows ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens (creating it, readable by its owner only, if missing) the database at `path` for reading
/// and writing, with the settings every store relies on.
pub fn open(path: &Path) -> Result<Connection, Box<dyn std::error::Error + Send + Sync>> {
    crate::private_files::create_private_file(path)?;
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with the mode it settled on; a file system without shared memory
    // keeps the rollback journal, which is still correct, only less concurrent.
    let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    configure(&connection)?;
    Ok(connection)
}

/// The per-connection settings: SQLite leaves foreign keys off unless asked (the stores' `ON
/// DELETE` rules need them), and WAL is safe with `synchronous = NORMAL`.
pub fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "synchronous", "NORMAL")
}

/// Brings `schema` up to date in one transaction, so a crash mid-way leaves the old version whole.
/// IMMEDIATE takes the write lock first: two processes opening a new file at once migrate one
/// after the other instead of both trying.
pub fn migrate(connection: &mut Connection, schema: &Schema) -> Result<(), MigrateError> {
    let supported = schema.supported();
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_versions (
             component TEXT PRIMARY KEY,
             version   INTEGER NOT NULL
         ) STRICT",
    )?;
    let found = match stored_version(&tx, schema.component)? {
        Some(version) => version,
        None => (schema.legacy_version)(&tx)?,
    };
    if found > supported {
        return Err(MigrateError::TooNew { found, supported });
    }
    for migration in &schema.migrations[found as usize..] {
        tx.execute_batch(migration)?;
    }
    tx.execute(
        "INSERT INTO schema_versions (component, version) VALUES (?1, ?2)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        rusqlite::params![schema.component, supported],
    )?;
    tx.commit()?;
    Ok(())
}

/// The version of `schema` this database holds.
pub fn version(connection: &Connection, schema: &Schema) -> rusqlite::Result<u32> {
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_versions'",
        [],
        |row| row.get(0),
    )?;
    let stored = if has_table {
        stored_version(connection, schema.component)?
    } else {
        None
    };
    match stored {
        Some(version) => Ok(version),
        None => (schema.legacy_version)(connection),
    }
}

fn stored_version(connection: &Connection, component: &str) -> rusqlite::Result<Option<u32>> {
    connection
        .query_row(
            "SELECT version FROM schema_versions WHERE component = ?1",
            [component],
            |row| row.get(0),
        )
        .optional()
}

/// Whether `error` is a UNIQUE constraint failing (something of that name exists).
pub fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation
            && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// A name that the one naming rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
}

/// The one rule for names of accounts, groups, services, tokens and storages: they become
/// directory names (a default home), URL path segments (a service's dashboard page) and log
/// fields, so they are 1 to 64 letters (any script), digits and `-` `_` `.` `@` `+` — room for
/// `first.last@example.com` — and do not start with `.` or `-` (hidden files, options).
pub fn check_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let reason = if name.is_empty() {
        Some("a name must not be empty")
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some("a name is at most 64 characters long")
    } else if name.contains('/') {
        Some("a name must not contain '/'")
    } else if name.chars().any(char::is_control) {
        Some("a name must not contain control characters")
    } else if name.starts_with(['.', '-']) {
        Some("a name must not start with '.' or '-'")
    } else if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'))
    {
        Some("a name may hold only letters, digits and '-', '_', '.', '@' or '+'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NameError {
            kind,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Schema = Schema {
        component: "one",
        migrations: &["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)"],
        legacy_version: |_| Ok(0),
    };

    #[test]
    fn each_component_keeps_its_own_version_and_migrates_once() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection, &ONE).unwrap();
        migrate(&mut connection, &ONE).unwrap();
        assert_eq!(version(&connection, &ONE).unwrap(), 2);
        let two = Schema {
            component: "two",
            migrations: &["CREATE TABLE c (z INTEGER)"],
            legacy_version: |_| Ok(0),
        };
        migrate(&mut connection, &two).unwrap();
        assert_eq!(version(&connection, &two).unwrap(), 1);
        assert_eq!(version(&connection, &ONE).unwrap(), 2);
        connection
            .execute(
                "UPDATE schema_versions SET version = 9 WHERE component = 'one'",
                [],
            )
            .unwrap();
        assert!(matches!(
            migrate(&mut connection, &ONE),
            Err(MigrateError::TooNew {
                found: 9,
                supported: 2
            })
        ));
    }

    #[test]
    fn a_version_kept_the_old_way_is_taken_over() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE a (x INTEGER)")
            .unwrap();
        let legacy = Schema {
            legacy_version: |_| Ok(1),
            ..ONE
        };
        migrate(&mut connection, &legacy).unwrap();
        assert_eq!(version(&connection, &ONE).unwrap(), 2, "only b was made");
    }

    #[test]
    fn one_naming_rule_with_the_reason() {
        for name in [
            "site",
            "first.last@example.com",
            "web-2",
            "a+b",
            "ÉtÉ_1",
            &"x".repeat(64),
        ] {
            assert_eq!(check_name("user", name), Ok(()), "{name:?}");
        }
        for (name, reason) in [
            ("", "empty"),
            ("a/b", "'/'"),
            (".hidden", "start with"),
            ("-x", "start with"),
            ("a b", "only letters"),
            ("tab\tname", "control"),
            (&"x".repeat(65), "64"),
        ] {
            let error = check_name("service", name).unwrap_err();
            assert!(error.reason.contains(reason), "{name:?}: {error}");
        }
    }
}
