//! How the deploy commands open the deploy database: where the secret key comes from, and what
//! each command may create ([`Access`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::deploy::service::secret_key::SecretKey;
use crate::deploy::service::store::DeployStore;

/// Where the key that encrypts deploy secrets comes from.
#[derive(Debug, Clone, Args)]
pub struct SecretKeyArgs {
    /// File holding the key that encrypts deploy secrets (base64 of 32 bytes); created with
    /// mode 0600 if missing. Default: `FERRY_SECRET_KEY` if set, else DB.secret-key beside the
    /// database.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "FERRY_SECRET_KEY_FILE"
    )]
    pub secret_key_file: Option<PathBuf>,
}

impl SecretKeyArgs {
    /// The key: the file named by the flag, else `FERRY_SECRET_KEY`, else the file beside `db`.
    pub fn load(&self, db: &Path) -> anyhow::Result<SecretKey> {
        if let Some(path) = &self.secret_key_file {
            let new = !path.exists();
            let key = SecretKey::load_or_create(path)?;
            if new {
                tracing::info!(
                    path = %path.display(),
                    "generated a new secret key for the stored secrets; back it up with the database"
                );
            }
            return Ok(key);
        }
        if let Ok(text) = std::env::var("FERRY_SECRET_KEY") {
            return Ok(SecretKey::from_base64(&text, "in FERRY_SECRET_KEY")?);
        }
        let path = SecretKey::default_path(db);
        let new = !path.exists();
        let key = SecretKey::load_or_create(&path)?;
        if new {
            tracing::info!(
                path = %path.display(),
                "generated a new secret key for the stored secrets; back it up with the database"
            );
        }
        Ok(key)
    }

    /// The key if it exists; else one that lives in memory only, for commands that never seal
    /// nor open a secret (a listing must not create a key file, let alone one that would not
    /// match secrets sealed under a lost key).
    fn load_for_reading(&self, db: &Path) -> anyhow::Result<SecretKey> {
        let path = match &self.secret_key_file {
            Some(path) => path.clone(),
            None if std::env::var_os("FERRY_SECRET_KEY").is_some() => return self.load(db),
            None => SecretKey::default_path(db),
        };
        if path.exists() {
            return self.load(db);
        }
        Ok(SecretKey::generate().0)
    }

    /// Opens the deploy database at `db` as `access` allows.
    pub fn open_store(&self, db: &Path, access: Access) -> anyhow::Result<DeployStore> {
        if access != Access::Create {
            crate::cli::require_database(db)?;
        }
        let key = match access {
            Access::Read => self.load_for_reading(db)?,
            Access::Create | Access::Change => self.load(db)?,
        };
        DeployStore::open(db, key)
            .with_context(|| format!("cannot open the deploy database {}", db.display()))
    }
}

/// What a command may do to the database: only commands that add something create it, and only
/// commands that store a secret create the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Lists and shows: the database must exist; no key file is made.
    Read,
    /// Changes something that must already exist.
    Change,
    /// Adds: the database and the key file are made when missing.
    Create,
}
