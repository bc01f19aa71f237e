//! The deploy commands end to end — `push`, `status`, `catchup` — tying the repository, the
//! target's marker, the journal, the planner and the executor together. Printing is the CLI's job.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::connection::TargetConnection;
use super::deploy_config::{DEPLOY_CONFIG_FILE, DeployConfig};
use super::executor::{ExecutionReport, Executor};
use super::git::{Change, GitCli, RepoSource, TreeEntry};
use super::ignore_rules::{IGNORE_FILE, IgnoreRules};
use super::journal::{Journal, JournalState};
use super::marker::{MarkerFile, current_deployer};
use super::order::{EntryPoints, Order};
use super::plan::{self, Basis, DeployPlan, PlanInput};
use super::progress::{Progress, Reporter};
use super::retry::RetryPolicy;
use super::{DeployError, DeployTarget};
use crate::client::ClientConfig;

/// Which commit to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// The repository's `HEAD`.
    Head,
    Branch(String),
    Commit(String),
}

/// Everything a deploy command needs.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub repo_dir: PathBuf,
    pub target: DeployTarget,
    /// Client settings, password included.
    pub client: ClientConfig,
    pub revision: Revision,
    pub excludes: Vec<String>,
    /// Connections for uploads and deletes.
    pub jobs: usize,
    /// Upload the whole tree whatever the marker says.
    pub init: bool,
    /// Refuse ([`DeployError::Backwards`]) a commit that is an ancestor of the one the target's
    /// marker holds: the deploy service never moves a site back in time on a webhook.
    pub forward_only: bool,
    /// Refuse a commit that is an ancestor of this one (a swapped deploy's live copy), whatever
    /// the target's own marker holds.
    pub never_behind: Option<String>,
    /// Entry-point patterns (`--entry`); empty: `.ferrydeploy`'s, else the defaults.
    pub entry_points: Vec<String>,
    /// Phased or unordered uploads; `None`: `.ferrydeploy`'s, else phased.
    pub order: Option<Order>,
    /// Where journals live.
    pub state_dir: PathBuf,
    pub retry: RetryPolicy,
    /// How long a connection may sit idle before it sends a NOOP.
    pub keepalive: Duration,
}

/// A plan and what it was made from.
pub struct Prepared {
    pub target_commit: String,
    pub marker: Option<MarkerFile>,
    pub plan: DeployPlan,
    /// Operations an unfinished earlier run completed (already left out of the plan).
    pub journaled: usize,
    session: TargetConnection,
    repo: Arc<GitCli>,
    journal_path: PathBuf,
    journal_from: Option<String>,
}

/// What `push` did.
#[derive(Debug)]
pub struct PushOutcome {
    pub plan: DeployPlan,
    pub report: Option<ExecutionReport>,
    /// The marker was already at the target commit and nothing needed doing.
    pub up_to_date: bool,
}

impl DeployRequest {
    /// The commit the request names.
    pub(crate) fn resolve(&self, repo: &GitCli) -> Result<String, DeployError> {
        Ok(match &self.revision {
            Revision::Head => repo.resolve("HEAD")?,
            Revision::Branch(branch) => repo
                .resolve(&format!("refs/heads/{branch}"))
                .or_else(|_| repo.resolve(branch))?,
            Revision::Commit(commit) => repo.resolve(commit)?,
        })
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        Journal::path_for(&self.state_dir, &self.target.display_url())
    }
}

/// Refuses to take the target back to an ancestor of what it holds (`deployed`), where the
/// request asks never to go backwards.
pub(crate) fn refuse_backwards(
    request: &DeployRequest,
    repo: &dyn RepoSource,
    deployed: Option<&str>,
    target_commit: &str,
) -> Result<(), DeployError> {
    let never_behind = request
        .never_behind
        .as_deref()
        .or(deployed.filter(|_| request.forward_only));
    if let Some(deployed) = never_behind
        && deployed != target_commit
        && repo.has_commit(deployed)?
        && repo.is_ancestor(target_commit, deployed)?
    {
        return Err(DeployError::Backwards {
            deployed: deployed.to_owned(),
            target: target_commit.to_owned(),
        });
    }
    Ok(())
}

/// Reads the repository and the target and plans the deploy; changes nothing.
pub async fn prepare(request: &DeployRequest, create_root: bool) -> Result<Prepared, DeployError> {
    let repo = Arc::new(GitCli::new(&request.repo_dir));
    let target_commit = request.resolve(&repo)?;
    let target_tree = repo.tree(&target_commit)?;
    let rules = ignore_rules(repo.as_ref(), &target_tree, &request.excludes)?;
    let (entry_points, order) = ordering(repo.as_ref(), &target_tree, request)?;
    let ordering = (&entry_points, order);

    let mut session = TargetConnection::open(request.client.clone(), &request.target.path).await?;
    if create_root {
        session.create_root().await?;
    }
    let marker = session.read_marker(&request.retry).await?;
    let deployed = if request.init {
        None
    } else {
        marker.as_ref().map(|m| m.commit.clone())
    };
    if marker.is_none() {
        info!("no deploy marker on the target: the whole tree will be uploaded");
    }

    let journal_path = request.journal_path();
    let journal = Journal::load(
        &journal_path,
        &request.target.display_url(),
        deployed.as_deref(),
    )
    .map_err(|e| DeployError::Transfer(format!("cannot read the deploy journal: {e}")))?;
    if !journal.is_empty() {
        info!(
            done = journal.len(),
            "resuming an unfinished deploy: files it completed are not sent again"
        );
    }

    if let Err(backwards) =
        refuse_backwards(request, repo.as_ref(), deployed.as_deref(), &target_commit)
    {
        session.quit().await;
        return Err(backwards);
    }

    let plan = match deployed.as_deref() {
        None => make_plan(
            &target_commit,
            &target_tree,
            Basis::Fresh,
            &rules,
            &journal,
            ordering,
        )?,
        Some(deployed) => {
            let known = repo.has_commit(deployed)?;
            let ancestor = known && repo.is_ancestor(deployed, &target_commit)?;
            let changes = if known {
                Some(repo.changes(deployed, &target_commit)?)
            } else {
                None
            };
            let rules_changed = changes.as_ref().is_some_and(|changes| {
                changes.iter().any(|c| match c {
                    Change::Upserted { path } | Change::Deleted { path } => path == IGNORE_FILE,
                })
            });
            match changes {
                Some(changes) if ancestor && !rules_changed => {
                    let old_tree = repo.tree(deployed)?;
                    let basis = Basis::Ancestor {
                        commit: deployed,
                        tree: &old_tree,
                        changes: &changes,
                    };
                    make_plan(
                        &target_commit,
                        &target_tree,
                        basis,
                        &rules,
                        &journal,
                        ordering,
                    )?
                }
                changes => {
                    if !known {
                        warn!(
                            deployed,
                            "the deployed commit is not in this repository (history rewritten?): \
                             comparing with the server's files and uploading every file again"
                        );
                    } else if !ancestor {
                        warn!(
                            deployed,
                            "the deployed commit is not an ancestor of the one to deploy \
                             (force push?): comparing with the server's files"
                        );
                    } else {
                        info!("{IGNORE_FILE} changed: comparing with the server's files");
                    }
                    let changed: Option<BTreeSet<String>> = changes.map(|changes| {
                        changes
                            .into_iter()
                            .map(|c| match c {
                                Change::Upserted { path } | Change::Deleted { path } => path,
                            })
                            .collect()
                    });
                    let remote = session.list_tree(&rules, &request.retry).await?;
                    let basis = Basis::Listing {
                        commit: Some(deployed),
                        remote: &remote,
                        changed: changed.as_ref(),
                    };
                    make_plan(
                        &target_commit,
                        &target_tree,
                        basis,
                        &rules,
                        &journal,
                        ordering,
                    )?
                }
            }
        }
    };
    Ok(Prepared {
        target_commit,
        marker,
        journaled: journal.len(),
        plan,
        session,
        repo,
        journal_path,
        journal_from: deployed,
    })
}

fn make_plan(
    target_commit: &str,
    target_tree: &[TreeEntry],
    basis: Basis<'_>,
    rules: &IgnoreRules,
    journal: &JournalState,
    (entry_points, order): (&EntryPoints, Order),
) -> Result<DeployPlan, DeployError> {
    plan::plan(PlanInput {
        target_commit,
        target_tree,
        basis,
        rules,
        journal,
        entry_points,
        order,
    })
    .map_err(|e| DeployError::Usage(e.to_string()))
}

/// `.ferryignore` of the commit being deployed, plus `--exclude`.
pub(crate) fn ignore_rules(
    repo: &dyn RepoSource,
    tree: &[TreeEntry],
    excludes: &[String],
) -> Result<IgnoreRules, DeployError> {
    let text = match tree.iter().find(|e| e.path == IGNORE_FILE) {
        Some(entry) => String::from_utf8_lossy(&repo.read_blob(&entry.blob)?).into_owned(),
        None => String::new(),
    };
    IgnoreRules::new(&text, excludes).map_err(|e| DeployError::Usage(e.to_string()))
}

/// Which files are entry points and whether uploads go out in phases: the request's flags, else
/// the deployed commit's `.ferrydeploy`, else the defaults.
fn ordering(
    repo: &dyn RepoSource,
    tree: &[TreeEntry],
    request: &DeployRequest,
) -> Result<(EntryPoints, Order), DeployError> {
    let config = match tree.iter().find(|e| e.path == DEPLOY_CONFIG_FILE) {
        Some(entry) => DeployConfig::parse(&String::from_utf8_lossy(&repo.read_blob(&entry.blob)?))
            .map_err(DeployError::Usage)?,
        None => DeployConfig::default(),
    };
    let patterns = match (&request.entry_points[..], &config.entry) {
        ([], Some(patterns)) => patterns.clone(),
        ([], None) => Vec::new(),
        (patterns, _) => patterns.to_vec(),
    };
    let entry_points = if patterns.is_empty() {
        EntryPoints::default()
    } else {
        EntryPoints::new(&patterns).map_err(|e| DeployError::Usage(e.to_string()))?
    };
    let order = request
        .order
        .or(config.order.map(Order::from))
        .unwrap_or_default();
    Ok((entry_points, order))
}

/// Plans without changing anything (`--dry-run`, `status`).
pub async fn dry_run(request: &DeployRequest) -> Result<Prepared, DeployError> {
    prepare(request, false).await
}

impl Prepared {
    /// Ends the session used for planning.
    pub async fn close(self) {
        self.session.quit().await;
    }
}

/// `ferry deploy push`: plan, execute, write the marker, telling `reporter` how the run goes
/// (nothing when the target is already up to date).
pub async fn push(
    request: &DeployRequest,
    reporter: Arc<dyn Reporter>,
) -> Result<PushOutcome, DeployError> {
    push_holding(request, reporter, None).await
}

/// [`push`], leaving the file at `held` (relative to the deploy root) as it is on the target:
/// neither uploaded nor deleted, whatever the commit holds there. A maintenance page sits there
/// meanwhile; [`super::maintenance`] settles it after the deploy.
pub(crate) async fn push_holding(
    request: &DeployRequest,
    reporter: Arc<dyn Reporter>,
    held: Option<&str>,
) -> Result<PushOutcome, DeployError> {
    let prepared = prepare(request, true).await?;
    let Prepared {
        target_commit,
        marker,
        mut plan,
        session,
        repo,
        journal_path,
        journal_from,
        ..
    } = prepared;
    if let Some(held) = held {
        plan.uploads.retain(|upload| upload.path != held);
        plan.deletes.retain(|path| path != held);
    }
    let marker_current = marker.as_ref().is_some_and(|m| m.commit == target_commit);
    if plan.is_empty() && marker_current && !request.init {
        session.quit().await;
        return Ok(PushOutcome {
            plan,
            report: None,
            up_to_date: true,
        });
    }
    let url = request.target.display_url();
    let journal = Journal::open(&journal_path, &url, journal_from.as_deref())
        .map_err(|e| DeployError::Transfer(format!("cannot open the deploy journal: {e}")))?;
    let journal = Arc::new(Mutex::new(journal));

    // The planning session's settings, with whatever it learnt (TLS 1.2 for a server that
    // requires resumption), so the other sessions do not stumble on the same refusal.
    let config = session.client.config().clone();
    let mut sessions = vec![session];
    let parallel_work = plan.uploads.len().max(plan.deletes.len());
    let extra = request.jobs.max(1).min(parallel_work.max(1)) - 1;
    let opened = futures_util::future::join_all(
        (0..extra).map(|_| TargetConnection::open(config.clone(), &request.target.path)),
    )
    .await;
    for session in opened {
        match session {
            Ok(session) => sessions.push(session),
            // Servers often limit connections per address; fewer connections still finish.
            Err(error) => warn!(%error, "could not open another connection; going on with fewer"),
        }
    }
    if sessions.len() < extra + 1 {
        info!(
            connections = sessions.len(),
            "the server refused some of the --jobs connections"
        );
    }

    let executor = Executor {
        repo,
        retry: request.retry,
        keepalive: request.keepalive,
        journal: Arc::clone(&journal),
        progress: Progress::new(&plan),
        reporter,
        temps: Arc::default(),
    };
    let (result, mut sessions) = executor.run(&plan, sessions).await;
    // The executor shares the journal; it must let go before the journal can be removed.
    drop(executor);
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            for session in sessions {
                session.quit().await;
            }
            return Err(error);
        }
    };
    let marker = MarkerFile::new(&target_commit, unix_now(), current_deployer());
    let write = sessions[0].write_marker(&marker, &request.retry).await;
    for session in sessions.drain(..) {
        session.quit().await;
    }
    write?;
    // A journal left behind would tell a later deploy from no marker (a new standby copy, a
    // target emptied by hand) that files are there which are not.
    match Arc::try_unwrap(journal).map(|m| m.into_inner()) {
        Ok(Ok(journal)) => {
            if let Err(error) = journal.remove() {
                warn!(%error, "cannot remove the finished deploy's journal");
            }
        }
        Ok(Err(_)) => warn!("the journal lock was poisoned"),
        Err(_) => warn!("the journal is still in use; it was not removed"),
    }
    Ok(PushOutcome {
        plan,
        report: Some(report),
        up_to_date: false,
    })
}

/// `ferry deploy catchup`: records the commit as deployed without uploading anything.
pub async fn catchup(request: &DeployRequest) -> Result<MarkerFile, DeployError> {
    let repo = GitCli::new(&request.repo_dir);
    let commit = request.resolve(&repo)?;
    let mut session = TargetConnection::open(request.client.clone(), &request.target.path).await?;
    session.create_root().await?;
    let marker = MarkerFile::new(&commit, unix_now(), current_deployer());
    let written = session.write_marker(&marker, &request.retry).await;
    session.quit().await;
    written?;
    // Whatever an unfinished deploy did is superseded by the adopted state.
    let _ = std::fs::remove_file(request.journal_path());
    Ok(marker)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
