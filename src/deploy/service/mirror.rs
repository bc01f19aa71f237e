//! The deploy service's local copies of its repositories: one bare repository per service under
//! `STATE/mirrors`, holding the remote's branches and nothing else, updated by one `git` process
//! at a time.
//!
//! Only branches are fetched: hosts publish other refs beside them (GitHub `refs/pull/*/head`,
//! GitLab `refs/merge-requests/*/head`) whose commits nobody merged, and a deploy must never find
//! them. Two updates of one mirror at once (a deploy's fetch and a restore preview's) would fight
//! over git's lock files, and a first clone would even delete the other's half-made copy, so each
//! mirror has its own lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::git_auth;
use super::model::{Secret, Service};
use crate::deploy::engine::git::{self, GitError};

/// How long a `git clone` or `git fetch` of a mirror may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// The refspec of every update: the remote's branches onto the mirror's, pruned.
const BRANCHES: &str = "+refs/heads/*:refs/heads/*";

/// Why a mirror could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot create {path}: {detail}")]
    CreateDir { path: String, detail: String },
    #[error("git did not finish within {0:?}")]
    Timeout(Duration),
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git: cannot fetch {url}: {detail}")]
    Fetch { url: String, detail: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// The mirrors of every service, and the lock of each.
#[derive(Debug)]
pub struct Mirrors {
    dir: PathBuf,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Mirrors {
    /// Mirrors kept under `state_dir/mirrors`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("mirrors"),
            locks: Mutex::default(),
        }
    }

    /// Where the service's mirror lives.
    pub fn path(&self, service: &Service) -> PathBuf {
        self.dir.join(format!("{}.git", service.id))
    }

    fn lock_of(&self, service: &Service) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(service.id).or_default())
    }

    /// Clones the service's repository on first use and fetches into it afterwards, from the
    /// service's current URL (an edit may have changed it), with its provider token for a
    /// private repository over HTTPS. Waits while another update of the same mirror runs.
    pub async fn update(
        &self,
        service: &Service,
        token: Option<&Secret>,
    ) -> Result<PathBuf, MirrorError> {
        let lock = self.lock_of(service);
        let _held = lock.lock().await;
        let dir = self.path(service);
        let mut command = git::async_command();
        if dir.join("HEAD").exists() {
            command
                .arg("-C")
                .arg(&dir)
                .args(["fetch", "--prune", "--no-tags", "--quiet", "--"])
                .arg(&service.repo_url)
                .arg(BRANCHES);
        } else {
            // Private: a mirror may hold a private repository's code.
            if let Some(parent) = dir.parent() {
                crate::private_files::create_private_dir_all(parent).map_err(|e| {
                    MirrorError::CreateDir {
                        path: parent.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
            }
            // A clone a crash cut short is started over.
            let _ = tokio::fs::remove_dir_all(&dir).await;
            // A bare clone maps the remote's branches onto its own and takes no other refs.
            command
                .args(["clone", "--bare", "--no-tags", "--quiet", "--"])
                .arg(&service.repo_url)
                .arg(&dir);
        }
        if let Some(token) = token {
            command.envs(git_auth::git_env(
                service.provider,
                &service.repo_url,
                token,
            ));
        }
        let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
            .await
            .map_err(|_| MirrorError::Timeout(GIT_TIMEOUT))?
            .map_err(MirrorError::Spawn)?;
        if !output.status.success() {
            return Err(MirrorError::Fetch {
                url: service.repo_url.clone(),
                detail: git_auth::explain_git_error(
                    &String::from_utf8_lossy(&output.stderr),
                    token.is_some(),
                ),
            });
        }
        drop_foreign_refs(&dir).await?;
        Ok(dir)
    }
}

/// Deletes every ref that is not a branch. Mirrors made before only branches were fetched hold
/// the host's pull-request refs; nothing may resolve them any more.
async fn drop_foreign_refs(dir: &Path) -> Result<(), MirrorError> {
    let refs = git::run_async(dir, &["for-each-ref", "--format=%(refname)"]).await?;
    let foreign: String = String::from_utf8_lossy(&refs)
        .lines()
        .filter(|name| !name.starts_with("refs/heads/"))
        .map(|name| format!("delete {name}\n"))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    git::run_async_with_input(dir, &["update-ref", "--stdin"], foreign.into_bytes()).await?;
    Ok(())
}
