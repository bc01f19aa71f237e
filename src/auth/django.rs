//! Reading a django-ftpserver site: its FTP groups and accounts with their Django users, from
//! the Django project's SQLite database directly or from `manage.py dumpdata auth.user
//! django_ftpserver` JSON (any database Django runs on).
//!
//! django-ftpserver's model: `FTPUserGroup` (name, permission letters as pyftpdlib's, home_dir)
//! and `FTPUserAccount` (a one-to-one on `auth.User`, its group, its own home_dir). An account's
//! home is its own home_dir, else its group's, with `{username}` replaced; with neither, Django
//! used `~/../{username}` of the server's user, which ferry replaces with its own default.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;

use super::account_input::{AccountChanges, Setting};
use super::permissions::Permissions;
use super::store::{AccountStore, GroupRecord, NewAccount, StoreError};

/// Why a site could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DjangoReadError {
    #[error("cannot open {path} as an SQLite database: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "{path} is not a django-ftpserver database (it has no {table} table); give the Django \
         project's database, after `manage.py migrate`"
    )]
    NotDjangoFtpserver { path: String, table: &'static str },
    #[error("cannot read the Django database: {0}")]
    Query(#[from] rusqlite::Error),
    #[error(
        "the file is not `manage.py dumpdata auth.user django_ftpserver` output: {0}; make it \
         with `python manage.py dumpdata auth.user django_ftpserver > site.json`"
    )]
    Json(String),
    #[error("FTP account {account} names a {what} ({id}) that is not in the data")]
    Dangling {
        account: String,
        what: &'static str,
        id: i64,
    },
}

/// An `FTPUserGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoGroup {
    pub name: String,
    /// pyftpdlib's letters, as ferry's.
    pub permissions: String,
    pub home: Option<String>,
}

/// An `FTPUserAccount` with its Django user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoAccount {
    pub name: String,
    /// Django's encoded password (`pbkdf2_sha256$…`, `!…` when unusable).
    pub password_hash: String,
    /// `is_active` of the Django user.
    pub active: bool,
    pub group: String,
    /// The account's own home_dir.
    pub home: Option<String>,
}

/// A django-ftpserver site as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DjangoFtpSite {
    pub groups: Vec<DjangoGroup>,
    pub accounts: Vec<DjangoAccount>,
}

impl DjangoFtpSite {
    /// Reads the Django project's SQLite database (opened read-only).
    pub fn from_sqlite(path: &Path) -> Result<Self, DjangoReadError> {
        let shown = path.display().to_string();
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| DjangoReadError::Open {
                path: shown.clone(),
                reason: error.to_string(),
            })?;
        for table in [
            "auth_user",
            "django_ftpserver_ftpusergroup",
            "django_ftpserver_ftpuseraccount",
        ] {
            let found: Option<String> = connection
                .query_row(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |row| row.get(0),
                )
                .map(Some)
                .or_else(|error| match error {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    rusqlite::Error::SqliteFailure(..) => Err(DjangoReadError::Open {
                        path: shown.clone(),
                        reason: error.to_string(),
                    }),
                    error => Err(error.into()),
                })?;
            if found.is_none() {
                return Err(DjangoReadError::NotDjangoFtpserver { path: shown, table });
            }
        }
        let groups = connection
            .prepare(
                "SELECT name, permission, home_dir FROM django_ftpserver_ftpusergroup ORDER BY id",
            )?
            .query_map([], |row| {
                Ok(DjangoGroup {
                    name: row.get(0)?,
                    permissions: row.get(1)?,
                    home: blank_to_none(row.get(2)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        let accounts = connection
            .prepare(
                "SELECT u.username, u.password, u.is_active, g.name, a.home_dir
                 FROM django_ftpserver_ftpuseraccount a
                 JOIN auth_user u ON u.id = a.user_id
                 JOIN django_ftpserver_ftpusergroup g ON g.id = a.group_id
                 ORDER BY a.id",
            )?
            .query_map([], |row| {
                Ok(DjangoAccount {
                    name: row.get(0)?,
                    password_hash: row.get(1)?,
                    active: row.get(2)?,
                    group: row.get(3)?,
                    home: blank_to_none(row.get(4)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Self { groups, accounts })
    }

    /// Reads `manage.py dumpdata auth.user django_ftpserver` output.
    pub fn from_dumpdata(json: &str) -> Result<Self, DjangoReadError> {
        let records: Vec<DumpRecord> =
            serde_json::from_str(json).map_err(|error| DjangoReadError::Json(error.to_string()))?;
        let mut users = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let mut accounts = Vec::new();
        for record in records {
            let fields = record.fields;
            let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
            match record.model.as_str() {
                "auth.user" => {
                    let user = DumpUser {
                        username: string(&field("username"))
                            .ok_or_else(|| missing("auth.user", "username"))?,
                        password: string(&field("password")).unwrap_or_default(),
                        active: field("is_active").as_bool().unwrap_or(true),
                    };
                    users.insert(id(&record.pk, "auth.user")?, user);
                }
                "django_ftpserver.ftpusergroup" => {
                    let group = DjangoGroup {
                        name: string(&field("name"))
                            .ok_or_else(|| missing("ftpusergroup", "name"))?,
                        permissions: string(&field("permission"))
                            .unwrap_or_else(|| "elradfmw".to_owned()),
                        home: blank_to_none(string(&field("home_dir"))),
                    };
                    groups.insert(id(&record.pk, "ftpusergroup")?, group);
                }
                "django_ftpserver.ftpuseraccount" => {
                    let user = field("user")
                        .as_i64()
                        .ok_or_else(|| missing("ftpuseraccount", "user"))?;
                    let group = field("group")
                        .as_i64()
                        .ok_or_else(|| missing("ftpuseraccount", "group"))?;
                    let home = blank_to_none(string(&field("home_dir")));
                    accounts.push((user, group, home));
                }
                // Other models of the dump (permissions, content types) say nothing about FTP.
                _ => {}
            }
        }
        let accounts = accounts
            .into_iter()
            .map(|(user_id, group_id, home)| {
                let user = users.get(&user_id).ok_or(DjangoReadError::Dangling {
                    account: format!("#{user_id}"),
                    what: "user",
                    id: user_id,
                })?;
                let group = groups.get(&group_id).ok_or(DjangoReadError::Dangling {
                    account: user.username.clone(),
                    what: "group",
                    id: group_id,
                })?;
                Ok(DjangoAccount {
                    name: user.username.clone(),
                    password_hash: user.password.clone(),
                    active: user.active,
                    group: group.name.clone(),
                    home,
                })
            })
            .collect::<Result<_, DjangoReadError>>()?;
        Ok(Self {
            groups: groups.into_values().collect(),
            accounts,
        })
    }

    /// The home Django gave `account`: its own home_dir, else its group's, with `{username}`
    /// replaced; `None` when neither is set (ferry's default home then).
    pub fn home_of(&self, account: &DjangoAccount) -> Option<String> {
        let group_home = self
            .groups
            .iter()
            .find(|group| group.name == account.group)
            .and_then(|group| group.home.as_deref());
        account
            .home
            .as_deref()
            .or(group_home)
            .map(|home| home.replace("{username}", &account.name))
    }
}

/// What importing one group or account does (or would do, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Changed to match the site: what changed.
    Updated(Vec<&'static str>),
    Unchanged,
    /// Not imported, and why.
    Skipped(String),
}

/// One line of an import: a group or an account, and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// `group` or `user`.
    pub kind: &'static str,
    pub name: String,
    pub outcome: Outcome,
    /// What the operator should know (a password that cannot be used, a default home).
    pub notes: Vec<String>,
}

/// Imports `site` into `store`: groups first, then accounts. Existing groups and accounts are
/// brought to the site's group, home, permissions and enabled state; an existing account keeps
/// the password it has in ferry (it may have logged in since, and been rehashed). With `dry_run`,
/// nothing is written and the lines say what would happen. Running it twice changes nothing
/// the second time.
pub fn import(
    site: &DjangoFtpSite,
    store: &AccountStore,
    dry_run: bool,
) -> Result<Vec<ImportLine>, StoreError> {
    let mut lines = Vec::new();
    let existing_groups: BTreeMap<String, GroupRecord> = store
        .list_groups()?
        .into_iter()
        .map(|group| (group.name.clone(), group))
        .collect();
    let mut imported_groups = std::collections::BTreeSet::new();
    for group in &site.groups {
        let line = import_group(group, existing_groups.get(&group.name), store, dry_run)?;
        if !matches!(line.outcome, Outcome::Skipped(_)) {
            imported_groups.insert(group.name.clone());
        }
        lines.push(line);
    }
    for account in &site.accounts {
        let line = if imported_groups.contains(&account.group) {
            import_account(site, account, store, dry_run)?
        } else {
            ImportLine {
                kind: "user",
                name: account.name.clone(),
                outcome: Outcome::Skipped(format!("its group {} was not imported", account.group)),
                notes: Vec::new(),
            }
        };
        lines.push(line);
    }
    Ok(lines)
}

/// A group's home in ferry: Django's, unless it is a pattern (`{username}`), which ferry's
/// group homes are not; its accounts then carry their own homes.
fn ferry_group_home(group: &DjangoGroup) -> Option<&str> {
    group
        .home
        .as_deref()
        .filter(|home| !home.contains("{username}"))
}

fn import_group(
    group: &DjangoGroup,
    existing: Option<&GroupRecord>,
    store: &AccountStore,
    dry_run: bool,
) -> Result<ImportLine, StoreError> {
    let line = |outcome, notes| ImportLine {
        kind: "group",
        name: group.name.clone(),
        outcome,
        notes,
    };
    let permissions = match group.permissions.parse::<Permissions>() {
        Ok(permissions) => permissions,
        Err(error) => return Ok(line(Outcome::Skipped(error.to_string()), Vec::new())),
    };
    let home = ferry_group_home(group);
    let mut notes = Vec::new();
    if group.home.is_some() && home.is_none() {
        notes.push("its home is a pattern: each account gets its own home".to_owned());
    }
    let Some(existing) = existing else {
        if !dry_run {
            match store.add_group(&group.name, home, Some(permissions)) {
                Ok(()) => {}
                Err(
                    refused @ (StoreError::InvalidName { .. } | StoreError::InvalidHome { .. }),
                ) => {
                    return Ok(line(Outcome::Skipped(refused.to_string()), notes));
                }
                Err(error) => return Err(error),
            }
        }
        return Ok(line(Outcome::Created, notes));
    };
    let mut changed = Vec::new();
    if existing.home.as_deref() != home {
        changed.push("home");
        if !dry_run {
            store.set_group_home(&group.name, home)?;
        }
    }
    if existing.permissions != permissions {
        changed.push("permissions");
        if !dry_run {
            store.set_group_permissions(&group.name, permissions)?;
        }
    }
    let outcome = if changed.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Updated(changed)
    };
    Ok(line(outcome, notes))
}

fn import_account(
    site: &DjangoFtpSite,
    account: &DjangoAccount,
    store: &AccountStore,
    dry_run: bool,
) -> Result<ImportLine, StoreError> {
    let mut notes = Vec::new();
    let group = site.groups.iter().find(|group| group.name == account.group);
    let group_home = group.and_then(ferry_group_home);
    // The account's own home in ferry: what Django computed, unless the group's home gives it.
    let django_home = site.home_of(account);
    if django_home.is_none() {
        notes.push("no home in Django: ferry's default (the user name under --root)".to_owned());
    }
    let home = django_home.filter(|home| Some(home.as_str()) != group_home);
    let usable = !account.password_hash.starts_with('!') && !account.password_hash.is_empty();
    let enabled = account.active && usable;
    if !usable {
        notes.push(
            "no usable password in Django: disabled; set one with `ferry user passwd`".to_owned(),
        );
    } else if !account.active {
        notes.push("inactive in Django: disabled".to_owned());
    }
    let line = |outcome, notes| ImportLine {
        kind: "user",
        name: account.name.clone(),
        outcome,
        notes,
    };
    let Some(existing) = store.get_user(&account.name)? else {
        if dry_run {
            return Ok(line(Outcome::Created, notes));
        }
        // A random password until the hash is stored: never one anybody knows.
        let placeholder = crate::auth::password::random_secret();
        let added = store.add_user(NewAccount {
            name: &account.name,
            group: Some(&account.group),
            home: home.as_deref(),
            permissions: None,
            admin: false,
            tls_required: None,
            storage: None,
            allowed_networks: None,
            hosts: None,
            login_message: None,
            logout_message: None,
            expires_on: None,
            dashboard_only: false,
            password: &placeholder,
        });
        match added {
            Ok(()) => {}
            Err(refused @ (StoreError::InvalidName { .. } | StoreError::InvalidHome { .. })) => {
                return Ok(line(Outcome::Skipped(refused.to_string()), notes));
            }
            Err(error) => return Err(error),
        }
        if usable {
            if let Err(error) = store.import_password_hash(&account.name, &account.password_hash) {
                let StoreError::UnrecognisedHash = error else {
                    return Err(error);
                };
                notes.push(format!("{error}; the account is disabled until then"));
                store.set_user_enabled(&account.name, false)?;
                return Ok(line(Outcome::Created, notes));
            }
        }
        if !enabled {
            store.set_user_enabled(&account.name, false)?;
        }
        return Ok(line(Outcome::Created, notes));
    };
    let mut changes = AccountChanges::default();
    let mut changed = Vec::new();
    if existing.group.as_deref() != Some(account.group.as_str()) {
        changes.group = Setting::Set(account.group.clone());
        changed.push("group");
    }
    if existing.home != home {
        changes.home = match &home {
            Some(home) => Setting::Set(home.clone()),
            None => Setting::Clear,
        };
        changed.push("home");
    }
    if existing.enabled != enabled {
        changes.enabled = Some(enabled);
        changed.push(if enabled { "enabled" } else { "disabled" });
    }
    if changed.is_empty() {
        return Ok(line(Outcome::Unchanged, notes));
    }
    if !dry_run {
        store.update_account(&account.name, &changes)?;
    }
    Ok(line(Outcome::Updated(changed), notes))
}

#[derive(Deserialize)]
struct DumpRecord {
    model: String,
    pk: serde_json::Value,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

struct DumpUser {
    username: String,
    password: String,
    active: bool,
}

fn string(value: &serde_json::Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn id(pk: &serde_json::Value, model: &str) -> Result<i64, DjangoReadError> {
    pk.as_i64()
        .ok_or_else(|| DjangoReadError::Json(format!("a {model} record has no numeric pk")))
}

fn missing(model: &str, field: &str) -> DjangoReadError {
    DjangoReadError::Json(format!("a {model} record has no {field}"))
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"[
      {"model": "auth.user", "pk": 1, "fields": {"username": "alice", "password": "pbkdf2_sha256$1$s$h", "is_active": true, "email": ""}},
      {"model": "auth.user", "pk": 2, "fields": {"username": "bob", "password": "!unusable", "is_active": false}},
      {"model": "auth.user", "pk": 3, "fields": {"username": "no-ftp", "password": "x", "is_active": true}},
      {"model": "django_ftpserver.ftpusergroup", "pk": 7, "fields": {"name": "staff", "permission": "elradfmwMT", "home_dir": "/srv/ftp/{username}"}},
      {"model": "django_ftpserver.ftpusergroup", "pk": 8, "fields": {"name": "readers", "permission": "elr", "home_dir": null}},
      {"model": "django_ftpserver.ftpuseraccount", "pk": 1, "fields": {"user": 1, "group": 7, "last_login": null, "home_dir": ""}},
      {"model": "django_ftpserver.ftpuseraccount", "pk": 2, "fields": {"user": 2, "group": 8, "last_login": null, "home_dir": null}}
    ]"#;

    #[test]
    fn dumpdata_gives_groups_accounts_and_homes_as_django_did() {
        let site = DjangoFtpSite::from_dumpdata(DUMP).unwrap();
        assert_eq!(site.groups.len(), 2);
        assert_eq!(site.groups[0].permissions, "elradfmwMT");
        assert_eq!(site.groups[1].home, None);
        let names: Vec<_> = site.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["alice", "bob"],
            "a Django user without an FTP account stays"
        );
        assert_eq!(
            site.home_of(&site.accounts[0]).as_deref(),
            Some("/srv/ftp/alice")
        );
        assert_eq!(site.home_of(&site.accounts[1]), None);
        assert!(!site.accounts[1].active);
    }

    #[test]
    fn broken_dumps_say_what_is_wrong() {
        let error = DjangoFtpSite::from_dumpdata("{}").unwrap_err().to_string();
        assert!(error.contains("manage.py dumpdata"), "{error}");
        let dangling = DUMP.replace(r#""user": 2, "group": 8"#, r#""user": 2, "group": 9"#);
        let error = DjangoFtpSite::from_dumpdata(&dangling)
            .unwrap_err()
            .to_string();
        assert!(error.contains("bob") && error.contains("group"), "{error}");
    }

    #[test]
    fn a_database_without_django_ftpserver_tables_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE auth_user (id INTEGER)")
            .unwrap();
        let error = DjangoFtpSite::from_sqlite(&path).unwrap_err().to_string();
        assert!(
            error.contains("django_ftpserver_ftpusergroup") && error.contains("migrate"),
            "{error}"
        );
    }
}
