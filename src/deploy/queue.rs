//! The deploy queue: deploys wait in SQLite (the store's `deploy_deploys` rows, `queued` →
//! `running` → `ok`/`failed`), so a restart loses nothing. One deploy runs at a time per
//! service, services run in parallel up to a limit, and pushes queued for a busy service
//! coalesce into the newest. Each deploy fetches the service's repository into a local mirror
//! and runs [`push::push_watched`] for the pushed commit; a deploy a crash interrupted is queued
//! again on start-up and resumes from its journal.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{error, info, warn};

use super::DeployError;
use super::executor::{Progress, ProgressSnapshot, default_retry_policy};
use super::git::{GitCli, RepoSource};
use super::git_auth;
use super::notify::{DeployFiles, MAX_LISTED_PATHS, Notifier};
use super::push::{self, DeployRequest, PushOutcome, Revision};
use super::store::{
    Deploy, DeployStats, DeployStatus, DeployStoreError, Secret, Service, ServiceStore,
};

/// How long a `git clone` or `git fetch` of a mirror may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);
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
    store: Arc<ServiceStore>,
    config: QueueConfig,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Services with a worker.
    active: Mutex<HashSet<String>>,
    /// Progress of running deploys, by deploy id.
    progress: Mutex<HashMap<i64, Arc<Progress>>>,
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
    pub fn new(store: Arc<ServiceStore>, config: QueueConfig) -> Arc<Self> {
        Self::with_notifier(store, config, None)
    }

    /// A queue whose finished deploys are mailed about by `notifier`.
    pub fn with_notifier(
        store: Arc<ServiceStore>,
        config: QueueConfig,
        notifier: Option<Arc<Notifier>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.parallel.max(1))),
            store,
            config,
            wake: Notify::new(),
            active: Mutex::new(HashSet::new()),
            progress: Mutex::new(HashMap::new()),
            notifier,
        })
    }

    pub fn store(&self) -> &Arc<ServiceStore> {
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

    /// The live progress of a running deploy.
    pub fn progress(&self, deploy: i64) -> Option<ProgressSnapshot> {
        lock(&self.progress).get(&deploy).map(|p| p.snapshot())
    }

    /// Re-queues what a crash interrupted, then dispatches queued deploys until the process
    /// ends.
    pub async fn run(self: Arc<Self>) {
        let store = Arc::clone(&self.store);
        match blocking(move || store.requeue_interrupted()).await {
            Ok(0) => {}
            Ok(n) => info!(deploys = n, "queued again the deploys a stop interrupted"),
            Err(error) => error!(%error, "cannot re-queue interrupted deploys"),
        }
        loop {
            let store = Arc::clone(&self.store);
            match blocking(move || store.services_with_queued_deploys()).await {
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
        loop {
            let store = Arc::clone(&self.store);
            let name = service.clone();
            let deploy = match blocking(move || store.claim_next_deploy(&name)).await {
                Ok(Some(deploy)) => deploy,
                Ok(None) => break,
                Err(error) => {
                    error!(service, %error, "cannot take the next deploy");
                    break;
                }
            };
            self.run_one(deploy).await;
        }
        lock(&self.active).remove(&service);
        drop(slot);
        self.wake();
    }

    async fn run_one(&self, deploy: Deploy) {
        let id = deploy.id;
        let started = Instant::now();
        info!(
            deploy = id,
            service = deploy.service,
            commit = deploy.commit_to,
            "deploy started"
        );
        let result = self.deploy(&deploy).await;
        let progress = lock(&self.progress).remove(&id);
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
                    Some(error),
                )
            }
        };
        let store = Arc::clone(&self.store);
        if let Err(error) =
            blocking(move || store.finish_deploy(id, status, stats, message.as_deref())).await
        {
            error!(deploy = id, %error, "cannot record how the deploy ended");
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

    /// Mirror, then push; the error is the text to record.
    async fn deploy(&self, deploy: &Deploy) -> Result<(DeployStats, DeployFiles), String> {
        let store = Arc::clone(&self.store);
        let name = deploy.service.clone();
        let (service, secrets) = blocking(move || {
            let service = store.service(&name)?;
            let secrets = store.service_secrets(&name)?;
            Ok::<_, DeployStoreError>((service, secrets))
        })
        .await
        .map_err(|e| e.to_string())?;
        let password = secrets
            .ftp_password
            .map(|p| p.expose().to_owned())
            .ok_or_else(|| "the service has no FTP password".to_owned())?;
        let mirror = self
            .fetch_mirror(&service, secrets.provider_token.as_ref())
            .await?;
        let request = DeployRequest {
            repo_dir: mirror.clone(),
            client: service
                .target
                .client_config(password, service.tls_verify.to_client()),
            target: service.target.clone(),
            revision: Revision::Commit(deploy.commit_to.clone()),
            excludes: Vec::new(),
            jobs: JOBS,
            init: false,
            state_dir: self.config.state_dir.join("journals"),
            retry: default_retry_policy(),
            keepalive: Duration::from_secs(30),
        };
        let id = deploy.id;
        let outcome = push::push_watched(&request, |progress| {
            lock(&self.progress).insert(id, progress);
        })
        .await
        .map_err(|e: DeployError| e.to_string())?;
        tokio::task::spawn_blocking(move || stats(&mirror, &outcome))
            .await
            .map_err(|e| e.to_string())
    }

    /// Clones the service's repository as a mirror on first use, fetches into it afterwards,
    /// with the service's provider token for a private repository over HTTPS.
    pub async fn mirror(&self, service: &Service) -> Result<PathBuf, String> {
        let store = Arc::clone(&self.store);
        let name = service.name.clone();
        let secrets = blocking(move || store.service_secrets(&name))
            .await
            .map_err(|e| e.to_string())?;
        self.fetch_mirror(service, secrets.provider_token.as_ref())
            .await
    }

    /// [`DeployQueue::mirror`] with the token already at hand.
    async fn fetch_mirror(
        &self,
        service: &Service,
        token: Option<&Secret>,
    ) -> Result<PathBuf, String> {
        let dir = self
            .config
            .state_dir
            .join("mirrors")
            .join(format!("{}.git", service.id));
        let mut command = tokio::process::Command::new("git");
        if dir.join("HEAD").exists() {
            // From the service's current URL, which an edit may have changed since the clone.
            command
                .arg("-C")
                .arg(&dir)
                .args(["fetch", "--prune", "--quiet", "--"])
                .arg(&service.repo_url)
                .arg("+refs/*:refs/*");
        } else {
            if let Some(parent) = dir.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            // A clone a crash cut short is started over.
            let _ = tokio::fs::remove_dir_all(&dir).await;
            command
                .args(["clone", "--mirror", "--quiet", "--"])
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
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("git did not finish within {GIT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "git: cannot fetch {}: {}",
                service.repo_url,
                git_auth::explain_git_error(
                    &String::from_utf8_lossy(&output.stderr),
                    token.is_some()
                )
            ));
        }
        Ok(dir)
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeployStoreError> + Send + 'static,
) -> Result<T, DeployStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DeployStoreError::Corrupt(format!("a store task failed: {e}")))?
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
