//! `ferry user`, `ferry group` and `ferry accounts`: the FTP accounts database from the command
//! line.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Subcommand;

use super::UsageError;
use crate::auth::store::{AccountRecord, AccountStore, NewAccount, StoreError};
use crate::auth::{AccountInput, AllowedNetworks, HostList, Permissions, Setting, TlsRequirement};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; the password is read from standard input.
    Add {
        /// The account's user name (1 to 64 characters, no `/`).
        name: String,
        /// Group whose home and permissions the account inherits.
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
        /// Home directory (relative to the server root, or absolute). Default: the group's, else
        /// the user name.
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Permission letters out of elradfmwMT (default: the group's, else all).
        #[arg(long, value_name = "LETTERS")]
        perms: Option<String>,
        /// May log in to the deploy dashboard. On FTP an admin is an account like any other
        /// (its home, its permissions); add --no-ftp for a dashboard-only account.
        #[arg(long)]
        admin: bool,
        /// Refuse every FTP login of the account: it may only use the deploy dashboard (with
        /// --admin).
        #[arg(long)]
        no_ftp: bool,
        /// The last day the account may log in, YYYY-MM-DD (UTC) [default: no end].
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// What this account must encrypt (none, control, data, all), beyond the server's policy.
        /// Default: the group's, else only what the server requires.
        #[arg(long, value_name = "WHAT")]
        tls_required: Option<String>,
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
    /// Show everything about an account: its own settings and what it takes from its group.
    Show {
        /// The account's user name.
        name: String,
    },
    /// Change an account's settings; settings not given keep their value.
    Edit {
        /// The account's user name.
        name: String,
        /// Move the account into this group.
        #[arg(long, value_name = "NAME", conflicts_with = "no_group")]
        group: Option<String>,
        /// Take the account out of its group.
        #[arg(long)]
        no_group: bool,
        /// The account's own home (relative to the server root, or absolute).
        #[arg(long, value_name = "DIR", conflicts_with = "inherit_home")]
        home: Option<String>,
        /// Take the group's home again, else the user name.
        #[arg(long)]
        inherit_home: bool,
        /// The account's own permission letters out of elradfmwMT ("" for none).
        #[arg(long, value_name = "LETTERS", conflicts_with = "inherit_perms")]
        perms: Option<String>,
        /// Take the group's permissions again, else all.
        #[arg(long)]
        inherit_perms: bool,
        /// What the account must encrypt (none, control, data, all), beyond the server's policy.
        #[arg(long, value_name = "WHAT", conflicts_with = "inherit_tls_required")]
        tls_required: Option<String>,
        /// Take the group's TLS requirement again, else only the server's.
        #[arg(long)]
        inherit_tls_required: bool,
        /// The last day the account may log in, YYYY-MM-DD (UTC).
        #[arg(long, value_name = "DATE", conflicts_with = "no_expiry")]
        expires: Option<String>,
        /// The account no longer expires.
        #[arg(long)]
        no_expiry: bool,
        /// Let the account log in over FTP again.
        #[arg(long, conflicts_with = "no_ftp")]
        ftp: bool,
        /// Refuse the account's FTP logins: it may only use the deploy dashboard.
        #[arg(long)]
        no_ftp: bool,
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
    Del {
        /// The account's user name.
        name: String,
    },
    /// Change an account's password, read from standard input.
    Passwd {
        /// The account's user name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group.
    Add {
        /// The group's name (1 to 64 characters, no `/`).
        name: String,
        /// Home directory shared by the group's accounts.
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Permission letters out of elradfmwMT [default: all].
        #[arg(long, value_name = "LETTERS")]
        perms: Option<String>,
        /// What the group's accounts must encrypt (none, control, data, all) [default: only
        /// what the server requires].
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
    /// Change a group's settings; settings not given keep their value.
    Edit {
        /// The group's name.
        name: String,
        /// The home shared by the group's accounts.
        #[arg(long, value_name = "DIR", conflicts_with = "no_home")]
        home: Option<String>,
        /// The group has no home: its accounts use their own, else their user name.
        #[arg(long)]
        no_home: bool,
        /// Permission letters out of elradfmwMT ("" for none).
        #[arg(long, value_name = "LETTERS")]
        perms: Option<String>,
        /// What the group's accounts must encrypt (none, control, data, all).
        #[arg(long, value_name = "WHAT", conflicts_with = "no_tls_required")]
        tls_required: Option<TlsRequirement>,
        /// The group requires nothing beyond the server's policy.
        #[arg(long)]
        no_tls_required: bool,
        /// The named storage ([storage.NAME] in ferry.toml) holding the group's files.
        #[arg(long, value_name = "NAME", conflicts_with = "server_storage")]
        storage: Option<String>,
        /// The group's files are on the server's storage.
        #[arg(long)]
        server_storage: bool,
        /// Networks the group's accounts may log in from (CIDRs or addresses, comma-separated).
        #[arg(long, value_name = "CIDR[,CIDR...]", conflicts_with = "any_network")]
        allowed_networks: Option<AllowedNetworks>,
        /// The group's accounts may log in from any network.
        #[arg(long)]
        any_network: bool,
        /// Virtual hosts the group's accounts are served on.
        #[arg(long, value_name = "NAME[,NAME...]", conflicts_with = "any_host")]
        hosts: Option<HostList>,
        /// The group's accounts are served on every host.
        #[arg(long)]
        any_host: bool,
    },
    /// List groups.
    List,
    /// Delete a group that no account uses.
    Del {
        /// The group's name.
        name: String,
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

/// `user add` and `user edit` flags for hosting: where an account may log in from and what it
/// is told at login and logout.
#[derive(Debug, clap::Args)]
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

pub(super) fn open_store(path: &Path) -> anyhow::Result<AccountStore> {
    Ok(AccountStore::open(path)?)
}

fn parse_perms(letters: Option<String>) -> anyhow::Result<Option<Permissions>> {
    letters
        .map(|l| {
            l.parse::<Permissions>()
                .map_err(|e| UsageError(format!("--perms: {e}")).into())
        })
        .transpose()
}

/// The first line of standard input, without its line ending.
/// `example` is the command to show when the flag is missing, as in `ferry user add NAME`.
pub(super) fn read_password(password_stdin: bool, example: &str) -> anyhow::Result<String> {
    if !password_stdin {
        return Err(UsageError(format!(
            "pass the password on standard input with --password-stdin, \
             as in: printf '%s' \"$PASSWORD\" | {example} --password-stdin"
        ))
        .into());
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

pub(super) fn user_command(store: &AccountStore, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            group,
            home,
            perms,
            admin,
            no_ftp,
            expires,
            tls_required,
            storage,
            hosting,
            password_stdin,
        } => {
            // The same checks as the dashboard's account form.
            let input = AccountInput {
                group: Setting::from_flags(group.as_deref(), false),
                home: Setting::from_flags(home.as_deref(), false),
                permissions: Setting::from_flags(perms.as_deref(), false),
                tls_required: Setting::from_flags(tls_required.as_deref(), false),
                storage: Setting::from_flags(storage.as_deref(), false),
                expires: Setting::from_flags(expires.as_deref(), false),
                ..AccountInput::default()
            };
            let changes = input.check().map_err(UsageError::from)?;
            let password = read_password(password_stdin, "ferry user add NAME")?;
            let login_message = hosting.login_message.as_deref().and_then(message_or_none);
            let logout_message = hosting.logout_message.as_deref().and_then(message_or_none);
            store.add_user(NewAccount {
                name: &name,
                group: changes.group.new_value().map(String::as_str),
                home: changes.home.new_value().map(String::as_str),
                permissions: changes.permissions.new_value().copied(),
                admin,
                tls_required: changes.tls_required.new_value().copied(),
                storage: changes.storage.new_value().map(String::as_str),
                allowed_networks: hosting.allowed_networks,
                hosts: hosting.hosts,
                login_message: login_message.as_deref(),
                logout_message: logout_message.as_deref(),
                expires_on: changes.expires_on.new_value().map(String::as_str),
                dashboard_only: no_ftp,
                password: &password,
            })?;
            crate::outln!("user {name} added");
        }
        UserCommand::Show { name } => {
            let account = store
                .get_user(&name)?
                .ok_or_else(|| StoreError::UserNotFound(name.clone()))?;
            show_user(&account);
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
            group,
            no_group,
            home,
            inherit_home,
            perms,
            inherit_perms,
            tls_required,
            inherit_tls_required,
            expires,
            no_expiry,
            ftp,
            no_ftp,
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
            let flag = |on: bool, off: bool| (on || off).then_some(on);
            let input = AccountInput {
                group: Setting::from_flags(group.as_deref(), no_group),
                home: Setting::from_flags(home.as_deref(), inherit_home),
                permissions: Setting::from_flags(perms.as_deref(), inherit_perms),
                tls_required: Setting::from_flags(tls_required.as_deref(), inherit_tls_required),
                storage: Setting::from_flags(storage.as_deref(), inherit_storage),
                expires: Setting::from_flags(expires.as_deref(), no_expiry),
                enabled: flag(enable, disable),
                admin: flag(admin, no_admin),
                ftp: flag(ftp, no_ftp),
                homes_under_root_only: false,
            };
            let changes = input.check().map_err(UsageError::from)?;
            if changes.is_empty() && !any_network && !any_host && hosting.is_empty() {
                return Err(UsageError(
                    "nothing to change: pass at least one setting, such as --home DIR, --perms \
                     LETTERS, --group NAME, --tls-required WHAT, --storage NAME, --expires DATE, \
                     --disable or --no-ftp (`ferry user edit --help` lists them all)"
                        .to_owned(),
                )
                .into());
            }
            store.update_account(&name, &changes)?;
            hosting.apply(store, &name)?;
            if any_network {
                store.set_user_allowed_networks(&name, None)?;
            }
            if any_host {
                store.set_user_hosts(&name, None)?;
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

/// `ferry user show`: one line per setting, saying where an inherited value comes from.
fn show_user(account: &AccountRecord) {
    let origin = |own: bool, group: bool| {
        if own {
            ""
        } else if group {
            " (the group's)"
        } else {
            " (default)"
        }
    };
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    crate::outln!("name:             {}", account.name);
    crate::outln!(
        "group:            {}",
        account.group.as_deref().unwrap_or("-")
    );
    crate::outln!(
        "home:             {}{}",
        account.effective_home(),
        origin(account.home.is_some(), account.group_home.is_some())
    );
    crate::outln!(
        "permissions:      {}{}",
        account.effective_permissions(),
        origin(
            account.permissions.is_some(),
            account.group_permissions.is_some()
        )
    );
    crate::outln!(
        "tls required:     {}{}",
        account
            .effective_tls_required()
            .map_or("only what the server requires", |t| t.as_str()),
        origin(
            account.tls_required.is_some(),
            account.group_tls_required.is_some()
        )
    );
    crate::outln!(
        "storage:          {}{}",
        account.effective_storage().unwrap_or("the server's"),
        origin(account.storage.is_some(), account.group_storage.is_some())
    );
    crate::outln!(
        "allowed networks: {}",
        account
            .effective_allowed_networks()
            .map_or_else(|| "any".to_owned(), ToString::to_string)
    );
    crate::outln!(
        "hosts:            {}",
        account
            .policy()
            .hosts
            .map_or_else(|| "every host".to_owned(), |h| h.to_string())
    );
    crate::outln!("enabled:          {}", yes_no(account.enabled));
    crate::outln!(
        "expires:          {}",
        match (&account.expires_on, account.expired) {
            (None, _) => "never".to_owned(),
            (Some(day), true) => format!("{day} (expired: logins are refused)"),
            (Some(day), false) => format!("{day} (the last day it may log in, UTC)"),
        }
    );
    crate::outln!(
        "ftp:              {}",
        if account.ftp_access {
            "yes"
        } else {
            "no (dashboard only)"
        }
    );
    crate::outln!(
        "admin:            {}",
        if account.admin {
            "yes (may use the deploy dashboard)"
        } else {
            "no"
        }
    );
    let message = |m: &Option<String>| {
        m.as_deref()
            .map_or("-".to_owned(), |m| m.replace('\n', "\\n"))
    };
    crate::outln!("login message:    {}", message(&account.login_message));
    crate::outln!("logout message:   {}", message(&account.logout_message));
    crate::outln!("created:          {}", account.created_at);
    crate::outln!(
        "last login:       {}",
        account.last_login.as_deref().unwrap_or("never")
    );
}

pub(super) fn group_command(store: &AccountStore, command: GroupCommand) -> anyhow::Result<()> {
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
        GroupCommand::Edit {
            name,
            home,
            no_home,
            perms,
            tls_required,
            no_tls_required,
            storage,
            server_storage,
            allowed_networks,
            any_network,
            hosts,
            any_host,
        } => {
            let permissions = parse_perms(perms)?;
            if home.is_none()
                && !no_home
                && permissions.is_none()
                && tls_required.is_none()
                && !no_tls_required
                && storage.is_none()
                && !server_storage
                && allowed_networks.is_none()
                && !any_network
                && hosts.is_none()
                && !any_host
            {
                return Err(UsageError(
                    "nothing to change: pass at least one setting, such as --home DIR, --perms                      LETTERS or --tls-required WHAT (`ferry group edit --help` lists them all)"
                        .to_owned(),
                )
                .into());
            }
            if home.is_some() || no_home {
                store.set_group_home(&name, home.as_deref())?;
            }
            if let Some(permissions) = permissions {
                store.set_group_permissions(&name, permissions)?;
            }
            if tls_required.is_some() || no_tls_required {
                store.set_group_tls_required(&name, tls_required)?;
            }
            if storage.is_some() || server_storage {
                store.set_group_storage(&name, storage.as_deref())?;
            }
            if allowed_networks.is_some() || any_network {
                store.set_group_allowed_networks(&name, allowed_networks.as_ref())?;
            }
            if hosts.is_some() || any_host {
                store.set_group_hosts(&name, hosts.as_ref())?;
            }
            crate::outln!("group {name} changed");
        }
        GroupCommand::Del { name } => {
            store.delete_group(&name)?;
            crate::outln!("group {name} deleted");
        }
    }
    Ok(())
}
