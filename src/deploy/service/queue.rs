//! The deploy queue: deploys wait in SQLite (the store's `deploy_deploys` rows, `queued` →
//! `running` → `ok`/`failed`), so a restart loses nothing. One deploy runs at a time per
//! service, services run in parallel up to a limit, and pushes queued for a busy service
//! coalesce into the newest. Each deploy fetches the service's repository into a local mirror
//! and runs the engine's [`mode::deploy`] for the pushed commit, in the service's mode (ordered,
//! unordered or swap) with its entry points and maintenance page; a deploy a crash interrupted
//! is queued again on start-up and resumes from its journal (an interrupted swap is finished, a
//! maintenance page left up is taken down).

use crate::deploy::service::blocking::{TaskFailed, run_blocking};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{error, info, warn};

use super::mirror::{MirrorError, Mirrors};
use super::model::{Deploy, DeployKind, DeployStats, DeployStatus, Service};
use super::notify::{DeployFiles, MAX_LISTED_PATHS, Notifier};
use super::store::{DeployStore, DeployStoreError};
use super::webhook::PushCommit;
use crate::deploy::engine::DeployError;
use crate::deploy::engine::git::{GitCli, GitError, RepoSource};
use crate::deploy::engine::mode::{self, DeployOutcome};
pub use crate::deploy::engine::progress::ProgressSnapshot;
use crate::deploy::engine::progress::{Progress, Reporter};
use crate::deploy::engine::push::{DeployRequest, PushOutcome, Revision};
use crate::deploy::engine::retry::default_retry_policy;

/// The most commits a push deploy lists (for the log and the mails).
const MAX_LISTED_COMMITS: usize = 50;
/// How often the dispatcher looks at the queue without being woken (a safety net).
const POLL: Duration = Duration::from_secs(5);
/// Connections per deploy.
const JOBS: usize = 4;

/// Queue settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Services deploying at the same time.
    pub parallel: usize,
    /// Mirrors and journals live here.
    pub state_dir: PathBuf,
}

impl QueueConfig {
    /// The state directory for a database: beside it, named after it.
    pub fn default_state_dir(db: &Path) -> PathBuf {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".state");
        db.with_file_name(name)
    }
}

/// The queue and its workers, shared with the web handlers.
pub struct DeployQueue {
    store: Arc<DeployStore>,
    config: QueueConfig,
    mirrors: Mirrors,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Services with a worker.
    active: Mutex<HashSet<String>>,
    /// Progress of running deploys, by deploy id.
    progress: Arc<Mutex<HashMap<i64, LiveDeploy>>>,
    /// Mails after each deploy; `None` when mail is off.
    notifier: Option<Arc<Notifier>>,
}

impl std::fmt::Debug for DeployQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DeployQueue {
    pub fn new(store: Arc<DeployStore>, config: QueueConfig) -> Arc<Self> {
        Self::with_notifier(store, config, None)
    }

    /// A queue whose finished deploys are mailed about by `notifier`.
    pub fn with_notifier(
        store: Arc<DeployStore>,
        config: QueueConfig,
        notifier: Option<Arc<Notifier>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.parallel.max(1))),
            mirrors: Mirrors::new(&config.state_dir),
            store,
            config,
            wake: Notify::new(),
            active: Mutex::new(HashSet::new()),
            progress: Arc::default(),
            notifier,
        })
    }

    pub fn store(&self) -> &Arc<DeployStore> {
        &self.store
    }

    /// Where mirrors and journals live.
    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// Tells the dispatcher that something was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The live progress of a running deploy, with the phase it is in.
    pub fn progress(&self, deploy: i64) -> Option<ProgressSnapshot> {
        lock(&self.progress).get(&deploy).map(LiveDeploy::snapshot)
    }

    /// Re-queues what a crash interrupted, then dispatches queued deploys until the process
    /// ends.
    pub async fn run(self: Arc<Self>) {
        if let Err(error) = crate::private_files::create_private_dir_all(&self.config.state_dir) {
            error!(
                dir = %self.config.state_dir.display(),
                %error,
                "cannot create the state directory; deploys will fail until it can be"
            );
        }
        let store = Arc::clone(&self.store);
        match run_blocking(move || store.deploys().requeue_interrupted()).await {
            Ok(0) => {}
            Ok(n) => info!(deploys = n, "queued again the deploys a stop interrupted"),
            Err(error) => error!(%error, "cannot re-queue interrupted deploys"),
        }
        loop {
            let store = Arc::clone(&self.store);
            match run_blocking(move || store.deploys().services_with_queued()).await {
                Ok(services) => {
                    for service in services {
                        if !lock(&self.active).insert(service.clone()) {
                            continue;
                        }
                        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                            // Every slot is busy: a finishing worker wakes us again.
                            lock(&self.active).remove(&service);
                            break;
                        };
                        tokio::spawn(Arc::clone(&self).work(service, slot));
                    }
                }
                Err(error) => error!(%error, "cannot read the deploy queue"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Runs the service's queued deploys one after the other.
    async fn work(self: Arc<Self>, service: String, slot: OwnedSemaphorePermit) {
        // Frees the service and the slot however this ends, a panic included, so a deploy that
        // crashes never leaves its service marked busy until a restart.
        let _active = ActiveService {
            queue: Arc::clone(&self),
            service: service.clone(),
            slot: Some(slot),
        };
        loop {
            let store = Arc::clone(&self.store);
            let name = service.clone();
            let deploy = match run_blocking(move || store.deploys().claim_next(&name)).await {
                Ok(Some(deploy)) => deploy,
                Ok(None) => break,
                Err(error) => {
                    error!(service, %error, "cannot take the next deploy");
                    break;
                }
            };
            Arc::clone(&self).run_one(deploy).await;
        }
    }

    async fn run_one(self: Arc<Self>, deploy: Deploy) {
        let id = deploy.id;
        let started = Instant::now();
        info!(
            deploy = id,
            service = deploy.service,
            kind = deploy.kind.as_str(),
            "deploy started"
        );
        // Its own task: a panic in the deploy ends as a failed deploy, not a stuck worker.
        let task = {
            let queue = Arc::clone(&self);
            let deploy = deploy.clone();
            tokio::spawn(async move { queue.deploy(&deploy).await })
        };
        let result = task.await.unwrap_or_else(|error| {
            error!(deploy = id, %error, "the deploy task failed");
            Err(DeployFailure::Task(error.into()))
        });
        let progress = lock(&self.progress)
            .remove(&id)
            .and_then(|live| live.progress);
        let (status, stats, files, message) = match result {
            Ok((stats, files)) => {
                info!(
                    deploy = id,
                    service = deploy.service,
                    files_added = stats.files_added,
                    files_modified = stats.files_modified,
                    files_removed = stats.files_removed,
                    bytes = stats.bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "deploy succeeded"
                );
                (DeployStatus::Ok, stats, files, None)
            }
            Err(refused @ DeployFailure::Backwards(_)) => {
                warn!(
                    deploy = id,
                    service = deploy.service,
                    "deploy not run: {refused}"
                );
                (
                    DeployStatus::Skipped,
                    DeployStats::default(),
                    DeployFiles::default(),
                    Some(refused.to_string()),
                )
            }
            Err(error) => {
                warn!(deploy = id, service = deploy.service, %error, "deploy failed");
                // What went out before the failure, for the log.
                let sent = DeployStats {
                    bytes: progress.map_or(0, |p| p.snapshot().bytes_done),
                    ..DeployStats::default()
                };
                (
                    DeployStatus::Failed,
                    sent,
                    DeployFiles::default(),
                    Some(error.to_string()),
                )
            }
        };
        let store = Arc::clone(&self.store);
        if let Err(error) = run_blocking(move || {
            store
                .deploys()
                .finish(id, status, stats, message.as_deref())
        })
        .await
        {
            error!(deploy = id, %error, "cannot record how the deploy ended");
            return;
        }
        if status == DeployStatus::Skipped {
            return;
        }
        if let Some(notifier) = &self.notifier {
            // Its own task: a slow mail server never holds up the next deploy.
            tokio::spawn(Arc::clone(notifier).notify(
                Arc::clone(&self.store),
                id,
                files,
                started.elapsed(),
            ));
        }
    }

    /// Mirror, settle the commit, then push.
    async fn deploy(&self, deploy: &Deploy) -> Result<(DeployStats, DeployFiles), DeployFailure> {
        let store = Arc::clone(&self.store);
        let name = deploy.service.clone();
        let (service, secrets) = run_blocking(move || {
            let service = store.services().get(&name)?;
            let secrets = store.services().secrets(&name)?;
            Ok::<_, DeployStoreError>((service, secrets))
        })
        .await?;
        let password = secrets
            .ftp_password
            .map(|p| p.expose().to_owned())
            .ok_or(DeployFailure::NoPassword)?;
        let mirror = self
            .mirrors
            .update(&service, secrets.provider_token.as_ref())
            .await?;
        // A push deploys what its branch holds now, whatever the webhook named: the webhook is
        // only a trigger. Restores and rollbacks deploy the commit an admin chose.
        let (commit, forward_only) = match deploy.kind {
            DeployKind::Push => (self.settle_push(deploy, &service, &mirror).await?, true),
            DeployKind::Restore | DeployKind::Rollback => (deploy.commit_to.clone(), false),
        };
        let request = DeployRequest {
            repo_dir: mirror.clone(),
            client: service
                .target
                .client_config(password, service.tls_verify.to_client()),
            target: service.target.clone(),
            revision: Revision::Commit(commit),
            excludes: Vec::new(),
            jobs: JOBS,
            init: false,
            forward_only,
            never_behind: None,
            entry_points: service.deploy.entry_points.clone(),
            order: None,
            state_dir: self.config.state_dir.join("journals"),
            retry: default_retry_policy(),
            keepalive: Duration::from_secs(30),
        };
        let id = deploy.id;
        let reporter = Arc::new(QueuedDeployReporter {
            deploy: id,
            running: Arc::clone(&self.progress),
        });
        let outcome = mode::deploy(&request, &service.deploy.strategy(), reporter)
            .await
            .map_err(|error| match error {
                error @ DeployError::Backwards { .. } => DeployFailure::Backwards(error),
                error => DeployFailure::Engine(error),
            })?;
        match &outcome {
            DeployOutcome::Swapped(swapped) => info!(
                deploy = id,
                service = deploy.service,
                gap_ms = swapped.gap.map_or(0.0, |gap| gap.as_secs_f64() * 1000.0),
                "deployed by swapping copies"
            ),
            DeployOutcome::InPlace {
                fell_back: true, ..
            } => warn!(
                deploy = id,
                service = deploy.service,
                "the target refuses the swap: deployed in place, in ordered phases"
            ),
            DeployOutcome::InPlace { .. } => {}
        }
        let outcome = match outcome {
            DeployOutcome::InPlace { outcome, .. } => outcome,
            DeployOutcome::Swapped(swapped) => swapped.standby,
        };
        if !outcome.plan.skipped.is_empty() {
            let first: Vec<String> = outcome
                .plan
                .skipped
                .iter()
                .take(10)
                .map(|s| s.describe())
                .collect();
            warn!(
                deploy = id,
                service = deploy.service,
                count = outcome.plan.skipped.len(),
                first = first.join(", "),
                "entries FTP cannot create were left out"
            );
        }
        run_blocking(move || Ok::<_, DeployFailure>(stats(&mirror, &outcome))).await
    }

    /// The commit a push deploy runs: the tip of the pushed branch in the freshly fetched
    /// mirror. Records it, with the commits since the last deploy as git tells them, in place
    /// of what the webhook claimed.
    async fn settle_push(
        &self,
        deploy: &Deploy,
        service: &Service,
        mirror: &Path,
    ) -> Result<String, DeployFailure> {
        let branch = match &deploy.branch {
            Some(branch) => branch.clone(),
            None if !service.branch.is_glob() => service.branch.as_str().to_owned(),
            None => return Err(DeployFailure::NoBranch),
        };
        let repo = GitCli::new(mirror);
        let claimed = deploy.commit_to.clone();
        let last = service.last_deployed_commit.clone();
        let (tip, commits) = run_blocking(move || {
            let tip = repo
                .resolve(&format!("refs/heads/{branch}"))
                .map_err(|_| DeployFailure::BranchMissing(branch.clone()))?;
            let holds_claimed = repo.has_commit(&claimed).unwrap_or(false)
                && repo.is_ancestor(&claimed, &tip).unwrap_or(false);
            if !holds_claimed {
                warn!(
                    branch,
                    claimed,
                    tip,
                    "the webhook named a commit the branch does not hold; deploying the branch tip"
                );
            }
            let from = last.filter(|last| repo.is_ancestor(last, &tip).unwrap_or(false));
            let commits: Vec<PushCommit> = repo
                .log(from.as_deref(), &tip, MAX_LISTED_COMMITS)?
                .into_iter()
                .rev()
                .map(PushCommit::from)
                .collect();
            Ok::<_, DeployFailure>((tip, commits))
        })
        .await?;
        let store = Arc::clone(&self.store);
        let (id, recorded) = (deploy.id, tip.clone());
        run_blocking(move || store.deploys().settle_commit(id, &recorded, &commits)).await?;
        Ok(tip)
    }

    /// Brings the service's mirror up to date (see [`Mirrors::update`]); its path.
    pub async fn mirror(&self, service: &Service) -> Result<PathBuf, DeployFailure> {
        let store = Arc::clone(&self.store);
        let name = service.name.clone();
        let secrets = run_blocking(move || store.services().secrets(&name)).await?;
        Ok(self
            .mirrors
            .update(service, secrets.provider_token.as_ref())
            .await?)
    }
}

/// A running deploy as the API shows it: the phase it is in (from its first step on) and, once
/// it uploads, its files and bytes.
#[derive(Default)]
struct LiveDeploy {
    phase: String,
    progress: Option<Arc<Progress>>,
}

impl LiveDeploy {
    fn snapshot(&self) -> ProgressSnapshot {
        let mut snapshot = self
            .progress
            .as_ref()
            .map(|p| p.snapshot())
            .unwrap_or_default();
        // The engine's phase names the whole deploy's step (a swap's standby copy, say).
        if !self.phase.is_empty() {
            snapshot.phase.clone_from(&self.phase);
        }
        snapshot
    }
}

/// What a queued deploy tells: its live progress for the API, each file and phase in the log.
struct QueuedDeployReporter {
    deploy: i64,
    running: Arc<Mutex<HashMap<i64, LiveDeploy>>>,
}

impl Reporter for QueuedDeployReporter {
    fn started(&self, progress: &Arc<Progress>) {
        lock(&self.running).entry(self.deploy).or_default().progress = Some(Arc::clone(progress));
    }

    fn phase(&self, phase: &str) {
        info!(deploy = self.deploy, phase, "deploy phase");
        lock(&self.running).entry(self.deploy).or_default().phase = phase.to_owned();
    }

    fn file_done(&self, what: &str, path: &str, size: Option<u64>) {
        match size {
            Some(size) => info!(deploy = self.deploy, path, size, "{what}"),
            None => info!(deploy = self.deploy, path, "{what}"),
        }
    }
}

/// Why a queued deploy did not succeed, as recorded with it.
#[derive(Debug, thiserror::Error)]
pub enum DeployFailure {
    /// Not run on purpose: a webhook never moves a site backwards (recorded as skipped).
    #[error(
        "{0}; a webhook never moves a site backwards: deploy that commit on purpose with a \
         rollback"
    )]
    Backwards(DeployError),
    #[error(transparent)]
    Engine(DeployError),
    #[error(transparent)]
    Store(#[from] DeployStoreError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("git: {0}")]
    Git(#[from] GitError),
    #[error("the deploy stopped on an internal error: {0}")]
    Task(#[from] TaskFailed),
    #[error("the service has no FTP password")]
    NoPassword,
    #[error("the branch {0} is not in the repository (was it deleted?)")]
    BranchMissing(String),
    #[error("the deploy names no branch and the service's is a pattern")]
    NoBranch,
}

/// A service with a worker: freed, and the dispatcher woken, when dropped.
struct ActiveService {
    queue: Arc<DeployQueue>,
    service: String,
    slot: Option<OwnedSemaphorePermit>,
}

impl Drop for ActiveService {
    fn drop(&mut self) {
        lock(&self.queue.active).remove(&self.service);
        // The slot goes back before the dispatcher looks for work again.
        drop(self.slot.take());
        self.queue.wake();
    }
}

/// Files added, modified and removed, and bytes sent; the paths, bounded, for the mail.
fn stats(repo: &Path, outcome: &PushOutcome) -> (DeployStats, DeployFiles) {
    let plan = &outcome.plan;
    let before: HashSet<String> = plan
        .from
        .as_deref()
        .and_then(|from| GitCli::new(repo).tree(from).ok())
        .map(|tree| tree.into_iter().map(|e| e.path).collect())
        .unwrap_or_default();
    let (added, modified): (Vec<&str>, Vec<&str>) = plan
        .uploads
        .iter()
        .map(|u| u.path.as_str())
        .partition(|path| !before.contains(*path));
    let stats = DeployStats {
        files_added: added.len() as u64,
        files_modified: modified.len() as u64,
        files_removed: plan.deletes.len() as u64,
        bytes: outcome.report.as_ref().map_or(0, |r| r.bytes),
    };
    let files = DeployFiles {
        added: first_paths(added),
        modified: first_paths(modified),
        removed: first_paths(plan.deletes.iter().map(String::as_str)),
    };
    (stats, files)
}

/// The first paths a mail lists.
fn first_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    paths
        .into_iter()
        .take(MAX_LISTED_PATHS)
        .map(str::to_owned)
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
