//! Restore and rollback: what redeploying a run of failed deploys (or a chosen commit) would
//! change on the target, and queueing that deploy.
//!
//! The preview is a tree diff in the service's git mirror between the commit the target really
//! holds (its marker, else the store's last deployed commit) and the commit to deploy, run
//! through the planner: a file added by one failed deploy and removed by the next does not
//! appear. The deploy itself is an ordinary queued one, so it starts from the target's marker and
//! journal like every push; when a restore ends ok, the store marks the failed deploys it covered
//! as restored by it. Neither is allowed while a deploy of the service is queued or running. This
//! module never writes to the target.

use crate::deploy::service::blocking::run_blocking;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::model::{Deploy, DeployKind, NewDeploy, Service};
use super::queue::DeployQueue;
use super::store::{DeployStore, DeployStoreError};
use super::webhook::PushCommit;
use crate::deploy::engine::connection::TargetConnection;
use crate::deploy::engine::git::{GitCli, GitError, RepoSource};
use crate::deploy::engine::journal::JournalState;
use crate::deploy::engine::order::{EntryPoints, Order};
use crate::deploy::engine::plan::{self, Basis, PlanInput};
use crate::deploy::engine::push;
use crate::deploy::engine::retry::default_retry_policy;

/// How long reading the target's marker for a preview may take before the store's word is used.
const MARKER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "{0} has no failed deploy to restore: every deploy since the last successful one ended \
         ok or was skipped"
    )]
    NothingToRestore(String),
    #[error("no commit {commit} in the repository of {service}; give a commit id of its branch")]
    UnknownCommit { service: String, commit: String },
    #[error("cannot update the repository mirror: {0}")]
    Mirror(#[from] crate::deploy::service::queue::DeployFailure),
    #[error("git: {0}")]
    Git(#[from] GitError),
    #[error("cannot plan the deploy: {0}")]
    Plan(String),
    #[error(transparent)]
    Store(#[from] DeployStoreError),
    #[error(transparent)]
    Task(#[from] crate::deploy::service::blocking::TaskFailed),
}

/// What a file becomes on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum FileChange {
    /// Uploaded, new on the target.
    #[serde(rename = "A")]
    Added,
    /// Uploaded over the file the target holds.
    #[serde(rename = "M")]
    Modified,
    /// Deleted from the target.
    #[serde(rename = "D")]
    Deleted,
}

impl FileChange {
    pub fn letter(self) -> char {
        match self {
            FileChange::Added => 'A',
            FileChange::Modified => 'M',
            FileChange::Deleted => 'D',
        }
    }
}

/// One line of the net diff.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ChangedFile {
    pub path: String,
    pub change: FileChange,
}

/// Where the deployed commit of a preview was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployedSource {
    /// The marker file on the target.
    Marker,
    /// The store's last deployed commit (the target could not be read or has no marker).
    Store,
    /// Nothing was ever deployed: every file is new.
    None,
}

/// What a restore or rollback would deploy, and what it would change on the target.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub service: String,
    pub kind: DeployKind,
    /// The commit the target holds.
    pub deployed: Option<String>,
    pub deployed_source: DeployedSource,
    /// Why the target's marker was not used, when it was not.
    pub marker_note: Option<String>,
    /// The commit to deploy.
    pub to: String,
    /// The failed deploys a restore covers, oldest first (empty for a rollback).
    pub deploys: Vec<i64>,
    /// Their commits, oldest first, each once (for a rollback: the chosen commit).
    pub commits: Vec<PushCommit>,
    /// The net change on the target, by path.
    pub changes: Vec<ChangedFile>,
    /// A deploy of the service queued or running now, which would make a restore wait.
    pub active_deploy: Option<i64>,
}

/// The preview of restoring `service`'s failed deploys.
pub async fn preview_restore(queue: &DeployQueue, service: &str) -> Result<Preview, RestoreError> {
    let (service, range, active) = {
        let store = Arc::clone(queue.store());
        let name = service.to_owned();
        run_blocking(move || {
            let service = store.services().get(&name)?;
            let range = store.deploys().restore_range(&name)?;
            let active = store.deploys().active(&name)?;
            Ok::<_, RestoreError>((service, range, active))
        })
        .await?
    };
    let Some(newest) = range.last() else {
        return Err(RestoreError::NothingToRestore(service.name));
    };
    let to = newest.commit_to.clone();
    let mirror = queue.mirror(&service).await?;
    let deployed = deployed_commit(queue.store(), &service).await;
    let deploys: Vec<i64> = range.iter().map(|d| d.id).collect();
    let (commits, changes) = {
        let deployed = deployed.commit.clone();
        let to = to.clone();
        let service = service.name.clone();
        run_blocking(move || {
            let repo = GitCli::new(mirror);
            if !repo.has_commit(&to)? {
                return Err(RestoreError::UnknownCommit {
                    service,
                    commit: to,
                });
            }
            let mut commits = combined_commits(&range);
            // A deploy queued without a commit list still names its commit.
            for deploy in &range {
                if !commits.iter().any(|c| c.id == deploy.commit_to)
                    && let Ok(commit) = commit_info(repo.dir(), &deploy.commit_to)
                {
                    commits.push(commit);
                }
            }
            let changes = net_changes(&repo, deployed.as_deref(), &to)?;
            Ok((commits, changes))
        })
        .await?
    };
    Ok(Preview {
        service: service.name,
        kind: DeployKind::Restore,
        deployed: deployed.commit,
        deployed_source: deployed.source,
        marker_note: deployed.note,
        to,
        deploys,
        commits,
        changes,
        active_deploy: active.map(|d| d.id),
    })
}

/// The preview of deploying `commit` (any commit of the repository) to `service`.
pub async fn preview_rollback(
    queue: &DeployQueue,
    service: &str,
    commit: &str,
) -> Result<Preview, RestoreError> {
    let (service, active) = {
        let store = Arc::clone(queue.store());
        let name = service.to_owned();
        run_blocking(move || {
            Ok::<_, RestoreError>((store.services().get(&name)?, store.deploys().active(&name)?))
        })
        .await?
    };
    let mirror = queue.mirror(&service).await?;
    let deployed = deployed_commit(queue.store(), &service).await;
    let (to, commit_info, changes) = {
        let deployed = deployed.commit.clone();
        let commit = commit.to_owned();
        let service = service.name.clone();
        run_blocking(move || {
            let repo = GitCli::new(mirror);
            let to = resolve(&repo, &service, &commit)?;
            let info = commit_info(repo.dir(), &to)?;
            let changes = net_changes(&repo, deployed.as_deref(), &to)?;
            Ok::<_, RestoreError>((to, info, changes))
        })
        .await?
    };
    Ok(Preview {
        service: service.name,
        kind: DeployKind::Rollback,
        deployed: deployed.commit,
        deployed_source: deployed.source,
        marker_note: deployed.note,
        to,
        deploys: Vec::new(),
        commits: vec![commit_info],
        changes,
        active_deploy: active.map(|d| d.id),
    })
}

/// Queues a deploy of the newest commit of `service`'s failed deploys; its id. `by` is recorded
/// as the deploy's user. Refused while a deploy of the service is queued or running.
pub fn queue_restore(
    store: &DeployStore,
    service: &str,
    by: Option<&str>,
) -> Result<i64, RestoreError> {
    let range = store.deploys().restore_range(service)?;
    let Some(newest) = range.last() else {
        return Err(RestoreError::NothingToRestore(service.to_owned()));
    };
    let deployed = store.services().get(service)?.last_deployed_commit;
    let new = NewDeploy {
        branch: newest.branch.clone(),
        commit_from: deployed,
        commit_to: newest.commit_to.clone(),
        delivery_id: None,
        user: by.map(str::to_owned),
        user_email: None,
        commits: combined_commits(&range),
    };
    Ok(store
        .deploys()
        .queue_exclusive(service, &new, DeployKind::Restore)?)
}

/// Queues a deploy of `commit` to `service` (resolved in its mirror, so a short id will do); its
/// id and the full commit id. Refused while a deploy of the service is queued or running.
pub async fn queue_rollback(
    queue: &DeployQueue,
    service: &str,
    commit: &str,
    by: Option<&str>,
) -> Result<(i64, String), RestoreError> {
    let store = Arc::clone(queue.store());
    let (record, active) = {
        let store = Arc::clone(&store);
        let name = service.to_owned();
        run_blocking(move || {
            Ok::<_, RestoreError>((store.services().get(&name)?, store.deploys().active(&name)?))
        })
        .await?
    };
    // Refused before the fetch; `queue_exclusive` checks again, atomically.
    if let Some(active) = active {
        return Err(DeployStoreError::DeployActive {
            service: record.name,
            id: active.id,
            status: active.status,
        }
        .into());
    }
    let mirror = queue.mirror(&record).await?;
    let commit = commit.to_owned();
    let by = by.map(str::to_owned);
    run_blocking(move || {
        let repo = GitCli::new(mirror);
        let to = resolve(&repo, &record.name, &commit)?;
        let new = NewDeploy {
            branch: None,
            commit_from: record.last_deployed_commit.clone(),
            commit_to: to.clone(),
            delivery_id: None,
            user: by,
            user_email: None,
            commits: vec![commit_info(repo.dir(), &to)?],
        };
        let id = store
            .deploys()
            .queue_exclusive(&record.name, &new, DeployKind::Rollback)?;
        Ok((id, to))
    })
    .await
}

/// The commits of `deploys`, oldest first, each once.
pub fn combined_commits(deploys: &[Deploy]) -> Vec<PushCommit> {
    let mut seen = BTreeSet::new();
    deploys
        .iter()
        .flat_map(|d| d.commits.iter())
        .filter(|c| seen.insert(c.id.clone()))
        .cloned()
        .collect()
}

struct Deployed {
    commit: Option<String>,
    source: DeployedSource,
    note: Option<String>,
}

/// The commit the target holds: its marker when it can be read, else the store's word.
async fn deployed_commit(store: &Arc<DeployStore>, service: &Service) -> Deployed {
    let from_store = |note: String| Deployed {
        commit: service.last_deployed_commit.clone(),
        source: if service.last_deployed_commit.is_some() {
            DeployedSource::Store
        } else {
            DeployedSource::None
        },
        note: Some(note),
    };
    let store = Arc::clone(store);
    let name = service.name.clone();
    let password = match tokio::task::spawn_blocking(move || store.services().secrets(&name)).await
    {
        Ok(Ok(secrets)) => secrets
            .ftp_password
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
        Ok(Err(error)) => return from_store(error.to_string()),
        Err(error) => return from_store(error.to_string()),
    };
    let config = service
        .target
        .client_config(password, service.tls_verify.to_client());
    let path = service.target.path.clone();
    let read = async move {
        let mut session = TargetConnection::open(config, &path).await?;
        let marker = session.read_marker(&default_retry_policy()).await;
        session.quit().await;
        marker
    };
    match tokio::time::timeout(MARKER_TIMEOUT, read).await {
        Ok(Ok(Some(marker))) => Deployed {
            commit: Some(marker.commit),
            source: DeployedSource::Marker,
            note: None,
        },
        Ok(Ok(None)) => from_store("the target has no deploy marker".to_owned()),
        Ok(Err(error)) => from_store(format!("cannot read the target's marker: {error}")),
        Err(_) => from_store(format!(
            "the target did not answer within {MARKER_TIMEOUT:?}"
        )),
    }
}

/// The net change from `deployed` (nothing: every file is added) to `to`, as the planner sees
/// it: ignore rules applied, files where directories go cleared.
fn net_changes(
    repo: &GitCli,
    deployed: Option<&str>,
    to: &str,
) -> Result<Vec<ChangedFile>, RestoreError> {
    let target_tree = repo.tree(to)?;
    let rules = push::ignore_rules(repo, &target_tree, &[])
        .map_err(|e| RestoreError::Plan(e.to_string()))?;
    let journal = JournalState::default();
    // A deployed commit the mirror lacks (history rewritten) tells nothing: all files are new.
    let deployed = match deployed {
        Some(commit) if repo.has_commit(commit)? => Some(commit),
        _ => None,
    };
    let old_tree = deployed.map(|commit| repo.tree(commit)).transpose()?;
    let changes = deployed
        .map(|commit| repo.changes(commit, to))
        .transpose()?;
    let basis = match (deployed, &old_tree, &changes) {
        (Some(commit), Some(tree), Some(changes)) => Basis::Ancestor {
            commit,
            tree,
            changes,
        },
        _ => Basis::Fresh,
    };
    let plan = plan::plan(PlanInput {
        target_commit: to,
        target_tree: &target_tree,
        basis,
        rules: &rules,
        journal: &journal,
        entry_points: &EntryPoints::default(),
        order: Order::Unordered,
    })
    .map_err(|e| RestoreError::Plan(e.to_string()))?;
    let before: BTreeSet<&str> = old_tree
        .iter()
        .flatten()
        .filter(|e| e.kind.is_regular())
        .map(|e| e.path.as_str())
        .collect();
    let mut files: Vec<ChangedFile> = plan
        .uploads
        .iter()
        .map(|u| ChangedFile {
            change: if before.contains(u.path.as_str()) {
                FileChange::Modified
            } else {
                FileChange::Added
            },
            path: u.path.clone(),
        })
        .chain(
            plan.deletes
                .iter()
                .chain(&plan.clear_files)
                .map(|path| ChangedFile {
                    path: path.clone(),
                    change: FileChange::Deleted,
                }),
        )
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn resolve(repo: &GitCli, service: &str, commit: &str) -> Result<String, RestoreError> {
    // Only commit ids (and names the mirror knows): never an option.
    if commit.is_empty() || commit.starts_with('-') {
        return Err(RestoreError::UnknownCommit {
            service: service.to_owned(),
            commit: commit.to_owned(),
        });
    }
    repo.resolve(commit).map_err(|e| match e {
        GitError::UnknownRevision(_) => RestoreError::UnknownCommit {
            service: service.to_owned(),
            commit: commit.to_owned(),
        },
        other => other.into(),
    })
}

/// A commit's id, message, author and date, read from the repository.
fn commit_info(repo: &Path, commit: &str) -> Result<PushCommit, RestoreError> {
    GitCli::new(repo)
        .log(None, commit, 1)?
        .into_iter()
        .next()
        .map(PushCommit::from)
        .ok_or_else(|| {
            GitError::Output {
                command: format!("log -1 {commit}"),
                detail: "no commit".to_owned(),
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Mona")
            .env("GIT_AUTHOR_EMAIL", "mona@example.com")
            .env("GIT_COMMITTER_NAME", "Mona")
            .env("GIT_COMMITTER_EMAIL", "mona@example.com")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn commit(dir: &Path, message: &str) -> String {
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", message]);
        git(dir, &["rev-parse", "HEAD"])
    }

    fn lines(changes: &[ChangedFile]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {}", c.change.letter(), c.path))
            .collect()
    }

    #[test]
    fn the_net_change_leaves_out_a_file_added_and_removed_within_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let repo_dir = dir.path();
        git(repo_dir, &["init", "-q", "-b", "main"]);
        std::fs::write(repo_dir.join("a.txt"), "a1").unwrap();
        std::fs::write(repo_dir.join("b.txt"), "b1").unwrap();
        std::fs::write(repo_dir.join(".ferryignore"), "secret.txt\n").unwrap();
        let c1 = commit(repo_dir, "one");
        std::fs::create_dir(repo_dir.join("tmp")).unwrap();
        std::fs::write(repo_dir.join("tmp/x.txt"), "x").unwrap();
        std::fs::write(repo_dir.join("a.txt"), "a2").unwrap();
        let c2 = commit(repo_dir, "two");
        std::fs::remove_dir_all(repo_dir.join("tmp")).unwrap();
        std::fs::remove_file(repo_dir.join("b.txt")).unwrap();
        std::fs::write(repo_dir.join("new.txt"), "n").unwrap();
        std::fs::write(repo_dir.join("secret.txt"), "ignored").unwrap();
        let c3 = commit(repo_dir, "three");
        let repo = GitCli::new(repo_dir);

        let net = net_changes(&repo, Some(&c1), &c3).unwrap();
        assert_eq!(lines(&net), ["M a.txt", "D b.txt", "A new.txt"]);
        let back = net_changes(&repo, Some(&c3), &c2).unwrap();
        assert_eq!(lines(&back), ["A b.txt", "D new.txt", "A tmp/x.txt"]);
        let fresh = net_changes(&repo, None, &c1).unwrap();
        assert_eq!(lines(&fresh), ["A a.txt", "A b.txt"]);
        let unknown = net_changes(&repo, Some(&"1".repeat(40)), &c1).unwrap();
        assert_eq!(
            lines(&unknown),
            lines(&fresh),
            "an unknown commit tells nothing"
        );

        let info = commit_info(repo_dir, &c2).unwrap();
        assert_eq!(
            (info.id.as_str(), info.message.as_str()),
            (c2.as_str(), "two")
        );
        assert_eq!(info.author_email.as_deref(), Some("mona@example.com"));
        assert!(matches!(
            resolve(&repo, "site", "--all"),
            Err(RestoreError::UnknownCommit { .. })
        ));
        assert_eq!(resolve(&repo, "site", &c3[..8]).unwrap(), c3);
    }

    #[test]
    fn combined_commits_keep_the_first_of_each_in_deploy_order() {
        let commit = |id: &str| PushCommit {
            id: id.into(),
            message: id.into(),
            author: "Mona".into(),
            author_email: None,
            timestamp: String::new(),
        };
        let deploy = |commits: Vec<PushCommit>| Deploy {
            id: 1,
            service: "site".into(),
            status: super::super::model::DeployStatus::Failed,
            branch: None,
            commit_from: None,
            commit_to: commits.last().unwrap().id.clone(),
            delivery_id: None,
            user: None,
            user_email: None,
            queued_at: String::new(),
            started_at: None,
            finished_at: None,
            stats: Default::default(),
            error: None,
            commits,
            kind: DeployKind::Push,
            duration_secs: None,
            skipped: None,
            restored_by: None,
        };
        let range = [
            deploy(vec![commit("c2")]),
            deploy(vec![commit("c2"), commit("c3")]),
            deploy(vec![commit("c4")]),
        ];
        let ids: Vec<String> = combined_commits(&range).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["c2", "c3", "c4"]);
    }
}
