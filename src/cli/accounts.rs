//! `ferry user`, `ferry group` and `ferry accounts`: the FTP accounts database from the command
//! line.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::auth::store::{AccountStore, NewAccount};
use crate::auth::{AllowedNetworks, HostList, Permissions, TlsRequirement};

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
        .map(|l| l.parse::<Permissions>().map_err(anyhow::Error::msg))
        .transpose()
}

/// The first line of standard input, without its line ending.
/// `example` is the command to show when the flag is missing, as in `ferry user add NAME`.
pub(super) fn read_password(password_stdin: bool, example: &str) -> anyhow::Result<String> {
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

pub(super) fn user_command(store: &AccountStore, command: UserCommand) -> anyhow::Result<()> {
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
        GroupCommand::Del { name } => {
            store.delete_group(&name)?;
            crate::outln!("group {name} deleted");
        }
    }
    Ok(())
}
