//! Carries a [`DeployPlan`] out over `--jobs` FTP sessions: every upload goes to a temporary name
//! and is renamed over the old file, every completed upload and delete goes into the journal,
//! transient failures (a `421`, a dropped connection, a timeout) are retried after a backoff on a
//! fresh connection, and sessions waiting for the others send NOOPs so the server keeps them.
//! Every reply is checked by the client; a failure here is never silent.

use std::collections::{BTreeSet, VecDeque};
use std::io::IsTerminal as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::DeployError;
use super::git::{GitError, RepoSource};
use super::ignore_rules::{IgnoreRules, TEMP_PREFIX};
use super::journal::Journal;
use super::marker::{MARKER_NAME, MAX_MARKER_BYTES, MarkerFile};
use super::plan::{DeployPlan, RemoteTree, Upload, human_bytes};
use crate::client::{Backoff, ClientConfig, ClientError, FtpClient, RemoteKind, StoreMode};
use crate::protocol::ReplyCode;

/// The most files and directories a listing of the target may hold, so a server (or another
/// user of it) cannot make the deploy hold an unbounded tree in memory.
pub const MAX_TREE_ENTRIES: usize = 1_000_000;

/// How often and how patiently failed operations are tried again: the client's [`Backoff`],
/// with shorter waits than its defaults (a deploy has many small steps, and a server that is
/// gone should fail the run in seconds, not minutes; the journal makes the rerun cheap).
pub type RetryPolicy = Backoff;

/// The deploy's retry policy: 5 tries, 250 ms doubling up to 8 s.
pub fn default_retry_policy() -> RetryPolicy {
    Backoff {
        attempts: 5,
        first_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(8),
    }
}

/// The wait before retry number `retry` (1 for the first), with ±25 % jitter so that parallel
/// sessions do not all come back at the same instant.
fn retry_delay(policy: &RetryPolicy, retry: u32) -> Duration {
    use rand::Rng as _;
    policy
        .delay(retry.saturating_sub(1))
        .mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
        .min(policy.max_delay)
}

/// A failure inside one step: a client error may be retried, anything else ends the deploy.
enum StepError {
    Client(ClientError),
    /// Opening a fresh session failed: the server is unreachable or refuses us.
    Reconnect(ClientError),
    Fatal(DeployError),
}

impl From<ClientError> for StepError {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

/// Runs `$body` (which may use `$client`, and `?` on client errors); on a transient error waits,
/// reconnects and runs it again, up to the policy's attempts. A macro rather than a function taking
/// an async closure, whose futures the compiler cannot yet prove `Send` inside spawned tasks.
macro_rules! with_retry {
    ($session_client:expr, $policy:expr, $what:expr, |$client:ident| $body:block) => {{
        let session_client: &mut FtpClient = $session_client;
        let policy: &RetryPolicy = $policy;
        let mut attempt = 1;
        let mut reconnect = false;
        loop {
            let result: Result<_, StepError> = async {
                if reconnect {
                    session_client
                        .reconnect()
                        .await
                        .map_err(StepError::Reconnect)?;
                }
                let $client = &mut *session_client;
                $body
            }
            .await;
            match result {
                Ok(value) => break Ok(value),
                Err(StepError::Client(error) | StepError::Reconnect(error))
                    if error.is_transient() && attempt < policy.attempts =>
                {
                    let delay = retry_delay(policy, attempt);
                    warn!(%error, attempt, "{} failed; retrying in {delay:?} on a new connection", $what);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    reconnect = true;
                }
                Err(StepError::Client(error)) => break Err(DeployError::from_client(&$what, error)),
                Err(StepError::Reconnect(error)) => break Err(DeployError::Connection(error)),
                Err(StepError::Fatal(error)) => break Err(error),
            }
        }
    }};
}

/// One session on the target, with the absolute path of the deploy root.
pub struct Session {
    pub client: FtpClient,
    root: String,
}

impl Session {
    /// Connects and logs in; the deploy root is `path` under the login directory.
    pub async fn open(config: ClientConfig, path: &str) -> Result<Self, DeployError> {
        let mut client = FtpClient::connect(config)
            .await
            .map_err(DeployError::Connection)?;
        let home = client
            .pwd()
            .await
            .map_err(|e| DeployError::from_client("PWD", e))?;
        let root = join(&home, path);
        Ok(Self { client, root })
    }

    /// The absolute remote path of `relative` (relative to the deploy root).
    pub fn path(&self, relative: &str) -> String {
        join(&self.root, relative)
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Creates the deploy root and its parents where missing.
    pub async fn create_root(&mut self) -> Result<(), DeployError> {
        if self.root == "/" {
            return Ok(());
        }
        let root = self.root.clone();
        self.client
            .mkdir_all(&root)
            .await
            .map_err(|e| DeployError::from_client(&format!("creating {root}"), e))
    }

    /// The marker on the target, or `None` when there is none (or no deploy root yet).
    pub async fn read_marker(
        &mut self,
        retry: &RetryPolicy,
    ) -> Result<Option<MarkerFile>, DeployError> {
        let path = self.path(MARKER_NAME);
        let body = with_retry!(
            &mut self.client,
            retry,
            "reading the deploy marker",
            |client| {
                match client.retrieve_small(&path, MAX_MARKER_BYTES).await {
                    Ok(body) => Ok(Some(body)),
                    Err(ClientError::Refused { reply, command }) if reply.code.get() >= 500 => {
                        match client.kind_of(&path).await? {
                            None => Ok(None),
                            Some(_) => Err(ClientError::Refused { command, reply }.into()),
                        }
                    }
                    Err(error) => Err(error.into()),
                }
            }
        )?;
        body.map(|body| MarkerFile::from_json(&body))
            .transpose()
            .map_err(|e| DeployError::Transfer(e.to_string()))
    }

    /// Writes the marker (to a temporary name, then renamed into place).
    pub async fn write_marker(
        &mut self,
        marker: &MarkerFile,
        retry: &RetryPolicy,
    ) -> Result<(), DeployError> {
        let json = marker.to_json();
        let path = self.path(MARKER_NAME);
        let temp = temp_name(&path);
        with_retry!(
            &mut self.client,
            retry,
            "writing the deploy marker",
            |client| {
                let sent = client
                    .store(&temp, &mut json.as_slice(), StoreMode::Replace)
                    .await?;
                if sent != json.len() as u64 {
                    return Err(
                        ClientError::Protocol("the marker upload was cut short".into()).into(),
                    );
                }
                rename_over(client, &temp, &path).await?;
                Ok(())
            }
        )
    }

    /// Lists every file and directory under the deploy root, not descending into ignored
    /// directories; at most [`MAX_TREE_ENTRIES`] of them.
    pub async fn list_tree(
        &mut self,
        rules: &IgnoreRules,
        retry: &RetryPolicy,
    ) -> Result<RemoteTree, DeployError> {
        let mut tree = RemoteTree::default();
        let mut pending = VecDeque::from([String::new()]);
        while let Some(dir) = pending.pop_front() {
            let path = self.path(&dir);
            let what = format!("listing {path}");
            let listed = with_retry!(&mut self.client, retry, what, |client| {
                match client.list(&path).await {
                    Ok(entries) => Ok(Some(entries)),
                    // The root itself may not exist yet.
                    Err(ClientError::Refused { reply, .. })
                        if dir.is_empty() && reply.code.get() >= 500 =>
                    {
                        Ok(None)
                    }
                    Err(error) => Err(error.into()),
                }
            })?;
            let Some(entries) = listed else { break };
            if tree.files.len() + tree.dirs.len() + entries.len() > MAX_TREE_ENTRIES {
                return Err(DeployError::Transfer(format!(
                    "the target holds more than {MAX_TREE_ENTRIES} files and directories under \
                     {}; that is not a site ferry can compare (deploy to an empty directory, or \
                     ignore the bulk in .ferryignore)",
                    self.root
                )));
            }
            for entry in entries {
                // A name that is not one path segment cannot be trusted to stay under the root.
                if entry.name.is_empty()
                    || entry.name == "."
                    || entry.name == ".."
                    || entry.name.contains('/')
                {
                    warn!(name = entry.name, dir = %path, "ignored a strange name in the listing");
                    continue;
                }
                let relative = if dir.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{dir}/{}", entry.name)
                };
                match entry.kind {
                    RemoteKind::Dir => {
                        if !rules.is_ignored_dir(&relative) {
                            pending.push_back(relative.clone());
                        }
                        tree.dirs.insert(relative);
                    }
                    RemoteKind::File => {
                        tree.files.insert(relative, entry.size.unwrap_or(u64::MAX));
                    }
                    RemoteKind::Symlink | RemoteKind::Other => {}
                }
            }
        }
        Ok(tree)
    }

    pub async fn quit(self) {
        let _ = self.client.quit().await;
    }
}

/// Counts of what a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub uploaded: usize,
    pub bytes: u64,
    pub deleted: usize,
    pub dirs_created: usize,
    pub dirs_removed: usize,
    pub dirs_kept: usize,
}

/// A copy of a [`Progress`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgressSnapshot {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// What is being done now (the file being sent or deleted).
    pub current: String,
}

/// Files and bytes done, for the progress line or the log.
pub struct Progress {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    current: Mutex<String>,
    started: Instant,
    terminal: bool,
}

impl Progress {
    pub fn new(plan: &DeployPlan) -> Arc<Self> {
        Arc::new(Self {
            files_total: (plan.uploads.len() + plan.deletes.len() + plan.clear_files.len()) as u64,
            bytes_total: plan.upload_bytes(),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        })
    }

    /// Where the run stands, for an API or a log line.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            current: self.current.lock().map(|c| c.clone()).unwrap_or_default(),
        }
    }

    fn start(&self, what: &str) {
        if let Ok(mut current) = self.current.lock() {
            what.clone_into(&mut current);
        }
    }

    fn file_done(&self, what: &str, path: &str, size: Option<u64>) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if self.terminal {
            debug!(path, "{what}");
        } else {
            match size {
                Some(size) => info!(path, size, "{what}"),
                None => info!(path, "{what}"),
            }
        }
    }

    fn line(&self) -> String {
        let files = self.files_done.load(Ordering::Relaxed);
        let bytes = self.bytes_done.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let current = self.current.lock().map(|c| c.clone()).unwrap_or_default();
        format!(
            "{files}/{} files  {}/{}  {}/s  {current}",
            self.files_total,
            human_bytes(bytes),
            human_bytes(self.bytes_total),
            human_bytes((bytes as f64 / seconds) as u64),
        )
    }

    /// Redraws the progress line on a terminal until `done` is notified.
    fn draw_until(self: &Arc<Self>, done: Arc<Notify>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.terminal {
            return None;
        }
        let progress = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                let line = progress.line();
                let width = terminal_width();
                let line: String = line.chars().take(width.saturating_sub(1)).collect();
                eprint!("\r\x1b[2K{line}");
                tokio::select! {
                    () = done.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            eprintln!("\r\x1b[2K{}", progress.line());
        }))
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Everything the executor shares with its workers.
pub struct Executor {
    pub repo: Arc<dyn RepoSource>,
    pub retry: RetryPolicy,
    /// How long a session may sit idle before it sends a NOOP.
    pub keepalive: Duration,
    pub journal: Arc<Mutex<Journal>>,
    pub progress: Arc<Progress>,
    /// Temporary names uploads went to and that were not renamed into place yet: removed when
    /// the run fails, so a failed deploy leaves no `.ferry-tmp.*` file behind.
    pub temps: Arc<Mutex<BTreeSet<String>>>,
}

impl Executor {
    /// Runs `plan` over `sessions` (at least one) and hands the sessions back, whatever happened,
    /// so the caller can write the marker or say goodbye.
    pub async fn run(
        &self,
        plan: &DeployPlan,
        mut sessions: Vec<Session>,
    ) -> (Result<ExecutionReport, DeployError>, Vec<Session>) {
        let done = Arc::new(Notify::new());
        let drawer = self.progress.draw_until(Arc::clone(&done));
        let mut report = ExecutionReport::default();
        let result = self.run_phases(plan, &mut sessions, &mut report).await;
        done.notify_one();
        if let Some(drawer) = drawer {
            let _ = drawer.await;
        }
        if result.is_err() {
            self.remove_leftover_temps(&mut sessions).await;
        }
        (result.map(|()| report), sessions)
    }

    /// After a failed run: deletes the temporary files its uploads left (best effort, on a new
    /// connection if the old one broke), so the target holds no `.ferry-tmp.*` name of ours.
    async fn remove_leftover_temps(&self, sessions: &mut [Session]) {
        let temps: Vec<String> = match self.temps.lock() {
            Ok(mut temps) => std::mem::take(&mut *temps).into_iter().collect(),
            Err(_) => return,
        };
        if temps.is_empty() {
            return;
        }
        let Some(session) = sessions.first_mut() else {
            warn!(
                files = temps.len(),
                "no connection left to remove the failed deploy's temporary files"
            );
            return;
        };
        let mut removed = 0;
        for temp in &temps {
            let mut deleted = session.client.delete(temp).await;
            if deleted.as_ref().is_err_and(ClientError::is_transient)
                && session.client.reconnect().await.is_ok()
            {
                deleted = session.client.delete(temp).await;
            }
            match deleted {
                Ok(()) => removed += 1,
                // Never created, or already gone.
                Err(ClientError::Refused { reply, .. }) if reply.code.get() >= 500 => {}
                Err(error) => warn!(file = temp, %error, "cannot remove a temporary file"),
            }
        }
        info!(removed, "removed the failed deploy's temporary files");
    }

    async fn run_phases(
        &self,
        plan: &DeployPlan,
        sessions: &mut Vec<Session>,
        report: &mut ExecutionReport,
    ) -> Result<(), DeployError> {
        let deletes = |paths: &[String]| paths.iter().cloned().map(Action::Delete).collect();
        report.deleted += self.parallel(deletes(&plan.clear_files), sessions).await?.1;
        for dir in &plan.clear_dirs {
            self.remove_if_empty(&mut sessions[0], dir, report).await?;
        }
        for dir in &plan.mkdirs {
            self.make_dir(&mut sessions[0], dir).await?;
            report.dirs_created += 1;
        }
        let uploads = plan.uploads.iter().cloned().map(Action::Upload).collect();
        let (uploaded, _) = self.parallel(uploads, sessions).await?;
        report.uploaded += uploaded;
        report.bytes += plan.upload_bytes();
        report.deleted += self.parallel(deletes(&plan.deletes), sessions).await?.1;
        for dir in &plan.prunes {
            self.remove_if_empty(&mut sessions[0], dir, report).await?;
        }
        Ok(())
    }

    /// Runs `actions` over all sessions; returns (uploads, deletes) done.
    async fn parallel(
        &self,
        actions: Vec<Action>,
        sessions: &mut Vec<Session>,
    ) -> Result<(usize, usize), DeployError> {
        if actions.is_empty() {
            return Ok((0, 0));
        }
        let queue = Arc::new(Mutex::new(VecDeque::from(actions)));
        let busy = Arc::new(AtomicUsize::new(sessions.len()));
        let idle_changed = Arc::new(Notify::new());
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for (index, mut session) in sessions.drain(..).enumerate() {
            let worker = Worker {
                repo: Arc::clone(&self.repo),
                retry: self.retry,
                journal: Arc::clone(&self.journal),
                progress: Arc::clone(&self.progress),
                temps: Arc::clone(&self.temps),
            };
            let queue = Arc::clone(&queue);
            let busy = Arc::clone(&busy);
            let idle_changed = Arc::clone(&idle_changed);
            let failed = Arc::clone(&failed);
            let keepalive = self.keepalive;
            workers.spawn(async move {
                let mut counts = (0usize, 0usize);
                let mut result = Ok(());
                // Counts this worker out even if it panics, so the others never wait for it.
                let mut working = BusyGuard(Some((Arc::clone(&busy), Arc::clone(&idle_changed))));
                loop {
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(action) = next else { break };
                    match worker.perform(&mut session, &action).await {
                        Ok(()) => match action {
                            Action::Upload(_) => counts.0 += 1,
                            Action::Delete(_) => counts.1 += 1,
                        },
                        Err(error) => {
                            failed.store(true, Ordering::SeqCst);
                            result = Err(error);
                            break;
                        }
                    }
                }
                working.release();
                // Keep this session alive while the others finish their last files.
                loop {
                    let notified = idle_changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if busy.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(keepalive) => {
                            if let Err(error) = session.client.noop().await {
                                debug!(worker = index, %error, "keep-alive NOOP failed; reconnecting");
                                let _ = session.client.reconnect().await;
                            }
                        }
                    }
                }
                (session, counts, result)
            });
        }
        let mut totals = (0, 0);
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok((session, counts, result)) => {
                    sessions.push(session);
                    totals.0 += counts.0;
                    totals.1 += counts.1;
                    if let Err(error) = result {
                        first_error.get_or_insert(error);
                    }
                }
                Err(join_error) => {
                    first_error.get_or_insert(DeployError::Transfer(format!(
                        "a transfer task failed: {join_error}"
                    )));
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(totals),
        }
    }

    async fn make_dir(&self, session: &mut Session, dir: &str) -> Result<(), DeployError> {
        let path = session.path(dir);
        with_retry!(
            &mut session.client,
            &self.retry,
            &format!("MKD {path}"),
            |client| {
                match client.mkdir(&path).await {
                    Ok(()) => Ok(()),
                    Err(ClientError::Refused { reply, command }) if reply.code.get() >= 500 => {
                        // Usually "exists": fine if it is a directory.
                        if client.kind_of(&path).await? == Some(RemoteKind::Dir) {
                            Ok(())
                        } else {
                            Err(ClientError::Refused { command, reply }.into())
                        }
                    }
                    Err(error) => Err(error.into()),
                }
            }
        )
    }

    /// RMD `dir` if the server lists it empty; a directory that still holds files (uploads of
    /// visitors, ignored files) is kept.
    async fn remove_if_empty(
        &self,
        session: &mut Session,
        dir: &str,
        report: &mut ExecutionReport,
    ) -> Result<(), DeployError> {
        let path = session.path(dir);
        let removed = with_retry!(
            &mut session.client,
            &self.retry,
            &format!("RMD {path}"),
            |client| {
                let entries = match client.list(&path).await {
                    Ok(entries) => entries,
                    Err(ClientError::Refused { reply, .. }) if reply.code.get() >= 500 => {
                        if client.kind_of(&path).await?.is_none() {
                            return Ok(None);
                        }
                        return Err(ClientError::Refused {
                            command: format!("LIST {path}"),
                            reply,
                        }
                        .into());
                    }
                    Err(error) => return Err(error.into()),
                };
                if !entries.is_empty() {
                    return Ok(Some(false));
                }
                client.rmdir(&path).await?;
                Ok(Some(true))
            }
        )?;
        match removed {
            Some(true) => {
                info!(dir = %path, "removed the emptied directory");
                report.dirs_removed += 1;
            }
            Some(false) => {
                info!(dir = %path, "kept the directory: it is not empty on the server");
                report.dirs_kept += 1;
            }
            None => {}
        }
        Ok(())
    }
}

/// Counts a worker out of the busy ones when released or dropped.
struct BusyGuard(Option<(Arc<AtomicUsize>, Arc<Notify>)>);

impl BusyGuard {
    fn release(&mut self) {
        if let Some((busy, idle_changed)) = self.0.take() {
            busy.fetch_sub(1, Ordering::SeqCst);
            idle_changed.notify_waiters();
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// One file operation of a parallel phase.
enum Action {
    Upload(Upload),
    Delete(String),
}

struct Worker {
    repo: Arc<dyn RepoSource>,
    retry: RetryPolicy,
    journal: Arc<Mutex<Journal>>,
    progress: Arc<Progress>,
    temps: Arc<Mutex<BTreeSet<String>>>,
}

impl Worker {
    async fn perform(&self, session: &mut Session, action: &Action) -> Result<(), DeployError> {
        match action {
            Action::Upload(upload) => {
                let path = session.path(&upload.path);
                self.progress.start(&upload.path);
                let what = format!("uploading {path}");
                with_retry!(&mut session.client, &self.retry, &what, |client| {
                    self.upload(client, upload, &path).await
                })?;
                self.record(|journal| journal.record_upload(&upload.path, &upload.blob))?;
                self.progress
                    .file_done("uploaded", &upload.path, Some(upload.size));
            }
            Action::Delete(relative) => {
                let path = session.path(relative);
                self.progress.start(relative);
                with_retry!(
                    &mut session.client,
                    &self.retry,
                    &format!("DELE {path}"),
                    |client| {
                        match client.delete(&path).await {
                            Ok(()) => Ok(()),
                            // Already gone (an earlier run deleted it before it could note so).
                            Err(ClientError::Refused { reply, command })
                                if reply.code.get() >= 500 =>
                            {
                                match client.kind_of(&path).await? {
                                    None => Ok(()),
                                    Some(_) => Err(ClientError::Refused { command, reply }.into()),
                                }
                            }
                            Err(error) => Err(error.into()),
                        }
                    }
                )?;
                self.record(|journal| journal.record_delete(relative))?;
                self.progress.file_done("deleted", relative, None);
            }
        }
        Ok(())
    }

    fn record(
        &self,
        write: impl FnOnce(&mut Journal) -> std::io::Result<()>,
    ) -> Result<(), DeployError> {
        let mut journal = self
            .journal
            .lock()
            .map_err(|_| DeployError::Transfer("the journal is unusable".into()))?;
        write(&mut journal)
            .map_err(|e| DeployError::Transfer(format!("cannot write the deploy journal: {e}")))
    }

    /// STOR to the temporary name, check the byte count, RNTO over the old file.
    async fn upload(
        &self,
        client: &mut FtpClient,
        upload: &Upload,
        path: &str,
    ) -> Result<(), StepError> {
        let temp = temp_name(path);
        if let Ok(mut temps) = self.temps.lock() {
            temps.insert(temp.clone());
        }
        let result = self.upload_via(client, upload, path, &temp).await;
        if result.is_ok() {
            if let Ok(mut temps) = self.temps.lock() {
                temps.remove(&temp);
            }
        } else if matches!(result, Err(StepError::Client(ClientError::Refused { .. })))
            && client.delete(&temp).await.is_ok()
        {
            // A refusal (a rename the account may not make, say) leaves the connection
            // usable: the temporary file goes at once.
            if let Ok(mut temps) = self.temps.lock() {
                temps.remove(&temp);
            }
        }
        result
    }

    async fn upload_via(
        &self,
        client: &mut FtpClient,
        upload: &Upload,
        path: &str,
        temp: &str,
    ) -> Result<(), StepError> {
        let sent = match self.store_blob(client, upload, temp).await {
            // The directory may have been removed on the server behind our back: make it again.
            Err(StepError::Client(ClientError::Refused { reply, command }))
                if reply.code.get() >= 500 =>
            {
                let parent = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
                if parent.is_empty() || client.kind_of(parent).await?.is_some() {
                    return Err(ClientError::Refused { command, reply }.into());
                }
                warn!(
                    dir = parent,
                    "the directory is missing on the server; creating it"
                );
                client.mkdir_all(parent).await?;
                self.store_blob(client, upload, temp).await?
            }
            other => other?,
        };
        if sent != upload.size {
            return Err(StepError::Fatal(DeployError::Transfer(format!(
                "uploading {path}: sent {sent} bytes, the file has {}",
                upload.size
            ))));
        }
        rename_over(client, temp, path).await?;
        self.progress.bytes_done.fetch_add(sent, Ordering::Relaxed);
        Ok(())
    }

    /// Streams the blob from `git cat-file` into STOR `temp`; returns the bytes sent.
    async fn store_blob(
        &self,
        client: &mut FtpClient,
        upload: &Upload,
        temp: &str,
    ) -> Result<u64, StepError> {
        let spawn_failed = |e| StepError::Fatal(DeployError::Git(GitError::Spawn(e)));
        let mut child = self
            .repo
            .blob_command(&upload.blob)
            .spawn()
            .map_err(spawn_failed)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut source = CountingReader {
            inner: stdout,
            counted: 0,
            progress: Arc::clone(&self.progress),
        };
        let stored = client.store(temp, &mut source, StoreMode::Replace).await;
        // Take back what this attempt added, whatever happens: the caller counts a success.
        self.progress
            .bytes_done
            .fetch_sub(source.counted, Ordering::Relaxed);
        let sent = stored?;
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        let status = child.wait().await.map_err(spawn_failed)?;
        if !status.success() {
            return Err(StepError::Fatal(DeployError::Git(GitError::Failed {
                command: format!("cat-file blob {}", upload.blob),
                stderr: stderr.trim().to_owned(),
            })));
        }
        Ok(sent)
    }
}

/// RNFR/RNTO `from` over `to`. Servers that refuse to rename over an existing file (IIS,
/// FileZilla Server) refuse the RNTO: the old file is then renamed aside, the new one into place,
/// and the old one deleted — the only moment a visitor could miss it. The old file is never
/// deleted before the new one is in place, so a server that refuses every rename (an account
/// without the rename permission) loses nothing.
pub(crate) async fn rename_over(
    client: &mut FtpClient,
    from: &str,
    to: &str,
) -> Result<(), ClientError> {
    match client.rename(from, to).await {
        Err(ClientError::Refused { reply, command })
            if command.starts_with("RNTO")
                && (reply.code == ReplyCode::FILE_UNAVAILABLE || reply.code.get() == 553) =>
        {
            if client.kind_of(to).await? != Some(RemoteKind::File) {
                return Err(ClientError::Refused { command, reply });
            }
            warn!(
                file = to,
                "the server will not rename over a file; moving the old one aside first"
            );
            let aside = format!("{}.old", temp_name(to));
            client.rename(to, &aside).await?;
            match client.rename(from, to).await {
                Ok(()) => {
                    if let Err(error) = client.delete(&aside).await {
                        warn!(file = aside, %error, "cannot delete the replaced file");
                    }
                    Ok(())
                }
                Err(error) => {
                    // Put the old file back: the site keeps what it had.
                    let _ = client.rename(&aside, to).await;
                    Err(error)
                }
            }
        }
        other => other,
    }
}

/// `dir/.ferry-tmp.name` for `dir/name`.
fn temp_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{TEMP_PREFIX}{name}"),
        None => format!("{TEMP_PREFIX}{path}"),
    }
}

/// `base` + `relative`, with exactly one slash between.
fn join(base: &str, relative: &str) -> String {
    let base = base.trim_end_matches('/');
    let relative = relative.trim_matches('/');
    match (base.is_empty(), relative.is_empty()) {
        (true, true) => "/".to_owned(),
        (_, true) => base.to_owned(),
        (true, false) => format!("/{relative}"),
        (false, false) => format!("{base}/{relative}"),
    }
}

/// Counts bytes read into the progress as they pass.
struct CountingReader<R> {
    inner: R,
    counted: u64,
    progress: Arc<Progress>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let added = (buf.filled().len() - before) as u64;
        self.counted += added;
        self.progress.bytes_done.fetch_add(added, Ordering::Relaxed);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_join_with_one_slash() {
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/", "a b/c"), "/a b/c");
        assert_eq!(join("/home/x/", "site/"), "/home/x/site");
        assert_eq!(join("/site", ""), "/site");
        assert_eq!(temp_name("/site/css/a.css"), "/site/css/.ferry-tmp.a.css");
    }

    #[test]
    fn retry_delays_double_up_to_the_limit_with_jitter() {
        let policy = RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        for (retry, base) in [(1, 100.0), (2, 200.0), (3, 400.0)] {
            let ms = retry_delay(&policy, retry).as_secs_f64() * 1000.0;
            assert!((base * 0.75..=base * 1.25).contains(&ms), "{retry}: {ms}");
        }
        for retry in [4, 5, 30] {
            assert!(retry_delay(&policy, retry) <= Duration::from_millis(500));
        }
    }
}
