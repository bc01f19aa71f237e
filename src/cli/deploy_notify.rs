//! `ferry deploy notify add/list/show/edit/del`: the named notification sets a service points
//! at (`deploy service add/edit --notify NAME`). The clap types and their handlers; the mail
//! itself is [`crate::deploy::service::notify`]'s.

use std::path::Path;

use clap::{Args, Subcommand};

use super::deploy_store::{Access, SecretKeyArgs};
use crate::deploy::service::model::{NotificationSet, NotificationSetUpdate, NotifyWhen};

/// `ferry deploy notify ...`
#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub key: SecretKeyArgs,
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Add a notification set: who is mailed after a deploy succeeds or fails.
    Add {
        /// The notification set's name.
        name: String,
        #[command(flatten)]
        settings: NotifySettings,
    },
    /// List the notification sets.
    List,
    /// Show one notification set.
    Show {
        /// The notification set's name.
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a notification set; flags not given keep their value, a list given replaces
    /// the old one (`--success ''` empties it).
    Edit {
        /// The notification set's name.
        name: String,
        #[command(flatten)]
        settings: NotifySettings,
        /// Stop mailing the pusher.
        #[arg(long, conflicts_with = "pusher")]
        no_pusher: bool,
        /// Stop mailing the commit authors.
        #[arg(long, conflicts_with = "authors")]
        no_authors: bool,
    },
    /// Delete a notification set; services that used it mail nobody until given another.
    Del {
        /// The notification set's name.
        name: String,
    },
}

/// The settings `add` takes and `edit` may change.
#[derive(Debug, Args)]
pub struct NotifySettings {
    /// Addresses mailed after a successful deploy, comma-separated.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub success: Option<Vec<String>>,
    /// Addresses mailed after a failed deploy, comma-separated.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub failure: Option<Vec<String>>,
    /// Also mail the person who pushed (the address the webhook gives): after every deploy,
    /// or with `=success` or `=failure` after those only.
    #[arg(
        long,
        value_name = "WHEN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "always"
    )]
    pub pusher: Option<NotifyWhen>,
    /// Also mail the authors of the deployed commits: after every deploy, or with `=success` or
    /// `=failure` after those only.
    #[arg(
        long,
        value_name = "WHEN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "always"
    )]
    pub authors: Option<NotifyWhen>,
}

/// A list as typed: blanks around addresses and empty entries dropped.
fn addresses(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// Runs one `deploy notify` command against the database at `db`.
pub fn run(db: &Path, args: NotifyArgs) -> anyhow::Result<()> {
    let access = match &args.command {
        NotifyCommand::Add { .. } => Access::Create,
        NotifyCommand::List | NotifyCommand::Show { .. } => Access::Read,
        _ => Access::Change,
    };
    let store = args.key.open_store(db, access)?;
    match args.command {
        NotifyCommand::Add { name, settings } => {
            let set = NotificationSet {
                name: name.clone(),
                success_emails: addresses(settings.success.as_deref().unwrap_or_default()),
                failure_emails: addresses(settings.failure.as_deref().unwrap_or_default()),
                notify_pusher: settings.pusher.unwrap_or_default(),
                notify_authors: settings.authors.unwrap_or_default(),
            };
            store.notification_sets().add(&set)?;
            crate::outln!("notification set {name} added");
        }
        NotifyCommand::List => {
            crate::outln!(
                "{:<20} {:<7} {:<7} {:<6} AUTHORS",
                "NAME",
                "SUCCESS",
                "FAILURE",
                "PUSHER"
            );
            for set in store.notification_sets().list()? {
                crate::outln!(
                    "{:<20} {:<7} {:<7} {:<6} {}",
                    set.name,
                    set.success_emails.len(),
                    set.failure_emails.len(),
                    set.notify_pusher,
                    set.notify_authors,
                );
            }
        }
        NotifyCommand::Show { name, json } => {
            let set = store.notification_sets().get(&name)?;
            if json {
                crate::outln!("{}", serde_json::to_string_pretty(&set)?);
            } else {
                let list = |l: &[String]| {
                    if l.is_empty() {
                        "-".to_owned()
                    } else {
                        l.join(", ")
                    }
                };
                crate::outln!("name:     {}", set.name);
                crate::outln!("success:  {}", list(&set.success_emails));
                crate::outln!("failure:  {}", list(&set.failure_emails));
                crate::outln!("pusher:   {}", set.notify_pusher);
                crate::outln!("authors:  {}", set.notify_authors);
            }
        }
        NotifyCommand::Edit {
            name,
            settings,
            no_pusher,
            no_authors,
        } => {
            let when =
                |given: Option<NotifyWhen>, off: bool| given.or(off.then_some(NotifyWhen::Never));
            let update = NotificationSetUpdate {
                success_emails: settings.success.as_deref().map(addresses),
                failure_emails: settings.failure.as_deref().map(addresses),
                notify_pusher: when(settings.pusher, no_pusher),
                notify_authors: when(settings.authors, no_authors),
            };
            store.notification_sets().update(&name, &update)?;
            crate::outln!("notification set {name} changed");
        }
        NotifyCommand::Del { name } => {
            store.notification_sets().delete(&name)?;
            crate::outln!("notification set {name} deleted");
        }
    }
    Ok(())
}
