//! `ferry import`: moving a site over from the projects ferry replaces.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Subcommand};

use super::accounts::open_store;
use crate::auth::django::{DjangoFtpSite, ImportLine, Outcome};
use crate::auth::store::AccountStore;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// FTP groups and accounts of a django-ftpserver site, with their Django passwords (which
    /// keep working), homes, permissions and active flags. Run again, it brings ferry's copies up
    /// to the site's and changes nothing else; existing accounts keep their ferry passwords.
    #[command(group(ArgGroup::new("source").required(true).args(["sqlite", "dumpdata"])))]
    DjangoFtpserver {
        /// The Django project's SQLite database (read-only).
        #[arg(long, value_name = "FILE")]
        sqlite: Option<PathBuf>,
        /// Output of `python manage.py dumpdata auth.user django_ftpserver` (any database).
        #[arg(long, value_name = "FILE")]
        dumpdata: Option<PathBuf>,
        /// Say what would be imported, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn import_command(db: &Path, command: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::DjangoFtpserver {
        sqlite,
        dumpdata,
        dry_run,
    } = command;
    let site = match (sqlite, dumpdata) {
        (Some(path), _) => DjangoFtpSite::from_sqlite(&path)?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            DjangoFtpSite::from_dumpdata(&text)?
        }
        (None, None) => unreachable!("clap requires one source"),
    };
    // A dry run writes nothing, not even a new database.
    let store = if dry_run && !db.exists() {
        AccountStore::open_in_memory()?
    } else {
        open_store(db)?
    };
    let lines = crate::auth::django::import(&site, &store, dry_run)?;
    for line in &lines {
        crate::outln!("{}", describe(line, dry_run));
    }
    let count = |kind: &str, wanted: fn(&Outcome) -> bool| {
        lines
            .iter()
            .filter(|line| line.kind == kind && wanted(&line.outcome))
            .count()
    };
    let created = |outcome: &Outcome| matches!(outcome, Outcome::Created);
    let updated = |outcome: &Outcome| matches!(outcome, Outcome::Updated(_));
    let skipped = |outcome: &Outcome| matches!(outcome, Outcome::Skipped(_));
    let not_imported = count("group", skipped) + count("user", skipped);
    crate::outln!(
        "{}: groups {} created, {} updated; accounts {} created, {} updated; {} not imported{}",
        if dry_run { "dry run" } else { "imported" },
        count("group", created),
        count("group", updated),
        count("user", created),
        count("user", updated),
        not_imported,
        if dry_run {
            " (nothing was written)"
        } else {
            ""
        },
    );
    if not_imported > 0 {
        bail!(
            "{not_imported} of the site's groups and accounts could not be imported; the lines above say why"
        );
    }
    Ok(())
}

fn describe(line: &ImportLine, dry_run: bool) -> String {
    let would = if dry_run { "would be " } else { "" };
    let what = match &line.outcome {
        Outcome::Created => format!("{would}created"),
        Outcome::Updated(fields) => format!("{would}updated ({})", fields.join(", ")),
        Outcome::Unchanged => "unchanged".to_owned(),
        Outcome::Skipped(why) => format!("not imported: {why}"),
    };
    let notes = if line.notes.is_empty() {
        String::new()
    } else {
        format!("; {}", line.notes.join("; "))
    };
    format!("{} {}: {what}{notes}", line.kind, line.name)
}
