//! `ferry deploy token add/list/del`: the tokens that authenticate calls to the JSON API
//! (`Authorization: Bearer TOKEN`). The command names are a contract (scripts and tests drive
//! them); extend them, never rename them.

use std::path::Path;

use clap::{Args, Subcommand};

use super::deploy_store::{Access, SecretKeyArgs};

/// `ferry deploy token ...`
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub key: SecretKeyArgs,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token and print it as `token: TOKEN` (shown once: only its hash is stored).
    Add {
        /// The token's name (what it is for, as in `ci`).
        name: String,
    },
    /// List the tokens (names and dates, never the tokens).
    List,
    /// Delete a token; requests carrying it are refused from then on.
    Del {
        /// The token's name (what it is for, as in `ci`).
        name: String,
    },
}

/// Runs one `deploy token` command against the database at `db`.
pub fn run(db: &Path, args: TokenArgs) -> anyhow::Result<()> {
    let access = match &args.command {
        TokenCommand::Add { .. } => Access::Create,
        TokenCommand::List => Access::Read,
        TokenCommand::Del { .. } => Access::Change,
    };
    let store = args.key.open_store(db, access)?;
    match args.command {
        TokenCommand::Add { name } => {
            let token = store.access().add_api_token(&name)?;
            crate::outln!("token: {}", token.expose());
            eprintln!(
                "keep it now, it cannot be shown again; send it as `Authorization: Bearer TOKEN`"
            );
        }
        TokenCommand::List => {
            crate::outln!("{:<24} {:<22} LAST USED", "NAME", "CREATED");
            for token in store.access().list_api_tokens()? {
                crate::outln!(
                    "{:<24} {:<22} {}",
                    token.name,
                    token.created_at,
                    token.last_used_at.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Del { name } => {
            store.access().delete_api_token(&name)?;
            crate::outln!("token {name} deleted");
        }
    }
    Ok(())
}
