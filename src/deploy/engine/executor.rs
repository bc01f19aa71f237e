//! Carries a [`DeployPlan`] out over `--jobs` connections to the target: every upload goes to a
//! temporary name and is renamed over the old file, every completed upload and delete goes into
//! the journal, transient failures are retried on a fresh connection ([`super::retry`]), and
//! connections waiting for the others send NOOPs so the server keeps them. Every reply is checked
//! by the client; a failure here is never silent. What happens is told to a [`Reporter`].

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::DeployError;
use super::connection::{TargetConnection, rename_over, temp_name};
use super::git::{GitError, RepoSource};
use super::journal::Journal;
use super::order::UploadPhase;
use super::plan::{DeployPlan, Upload};
use super::progress::{Progress, Reporter};
use super::retry::{RetryPolicy, StepError, with_retry};
use crate::client::{ClientError, FtpClient, RemoteKind, StoreMode};
use crate::protocol::hash::{HashAlgorithm, Hasher};

/// Counts of what a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub uploaded: usize,
    pub bytes: u64,
    pub deleted: usize,
    pub dirs_created: usize,
    pub dirs_removed: usize,
    pub dirs_kept: usize,
    /// Uploads the server's HASH confirmed byte for byte.
    pub verified: u64,
}

/// Everything the executor shares with its workers.
pub struct Executor {
    pub repo: Arc<dyn RepoSource>,
    pub retry: RetryPolicy,
    /// How long a session may sit idle before it sends a NOOP.
    pub keepalive: Duration,
    pub journal: Arc<Mutex<Journal>>,
    pub progress: Arc<Progress>,
    pub reporter: Arc<dyn Reporter>,
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
        mut sessions: Vec<TargetConnection>,
    ) -> (Result<ExecutionReport, DeployError>, Vec<TargetConnection>) {
        self.reporter.started(&self.progress);
        let mut report = ExecutionReport::default();
        let result = self.run_phases(plan, &mut sessions, &mut report).await;
        if result.is_err() {
            self.remove_leftover_temps(&mut sessions).await;
        }
        report.verified = self.progress.verified();
        (result.map(|()| report), sessions)
    }

    /// After a failed run: deletes the temporary files its uploads left (best effort, on a new
    /// connection if the old one broke), so the target holds no `.ferry-tmp.*` name of ours.
    async fn remove_leftover_temps(&self, sessions: &mut [TargetConnection]) {
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
        sessions: &mut Vec<TargetConnection>,
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
        // Phase by phase (see `order`): a phase starts once the one before has ended, its
        // files over all connections at once; a failure stops the run before the next phase.
        for phase in UploadPhase::ALL {
            let batch: Vec<Action> = plan
                .uploads
                .iter()
                .filter(|upload| upload.phase == phase)
                .cloned()
                .map(Action::Upload)
                .collect();
            if batch.is_empty() {
                continue;
            }
            let started = Instant::now();
            let files = batch.len();
            self.progress.set_phase(phase.describe());
            self.reporter.phase(phase.describe());
            info!(phase = phase.describe(), files, "phase started");
            let (uploaded, _) = self.parallel(batch, sessions).await?;
            report.uploaded += uploaded;
            info!(
                phase = phase.describe(),
                files,
                seconds = started.elapsed().as_secs_f64(),
                "phase done"
            );
        }
        report.bytes += plan.upload_bytes();
        if !plan.deletes.is_empty() || !plan.prunes.is_empty() {
            let started = Instant::now();
            self.progress.set_phase("deletes");
            self.reporter.phase("deletes");
            info!(
                phase = "deletes",
                files = plan.deletes.len(),
                "phase started"
            );
            report.deleted += self.parallel(deletes(&plan.deletes), sessions).await?.1;
            for dir in &plan.prunes {
                self.remove_if_empty(&mut sessions[0], dir, report).await?;
            }
            info!(
                phase = "deletes",
                files = plan.deletes.len(),
                seconds = started.elapsed().as_secs_f64(),
                "phase done"
            );
        }
        Ok(())
    }

    /// Runs `actions` over all sessions; returns (uploads, deletes) done.
    async fn parallel(
        &self,
        actions: Vec<Action>,
        sessions: &mut Vec<TargetConnection>,
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
                reporter: Arc::clone(&self.reporter),
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

    async fn make_dir(&self, session: &mut TargetConnection, dir: &str) -> Result<(), DeployError> {
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
        session: &mut TargetConnection,
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
    reporter: Arc<dyn Reporter>,
    temps: Arc<Mutex<BTreeSet<String>>>,
}

impl Worker {
    async fn perform(
        &self,
        session: &mut TargetConnection,
        action: &Action,
    ) -> Result<(), DeployError> {
        match action {
            Action::Upload(upload) => {
                let path = session.path(&upload.path);
                self.progress.start(&upload.path);
                let what = format!("uploading {path}");
                let verified = with_retry!(&mut session.client, &self.retry, &what, |client| {
                    self.upload(client, upload, &path).await
                })?;
                self.record(|journal| journal.record_upload(&upload.path, &upload.blob))?;
                self.progress.file_done();
                if verified {
                    self.progress.file_verified();
                }
                let what = if verified {
                    "uploaded and verified"
                } else {
                    "uploaded"
                };
                self.reporter
                    .file_done(what, &upload.path, Some(upload.size));
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
                self.progress.file_done();
                self.reporter.file_done("deleted", relative, None);
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
    ) -> Result<bool, StepError> {
        let temp = temp_name(path);
        if let Ok(mut temps) = self.temps.lock() {
            temps.insert(temp.clone());
        }
        let result = self.upload_via(client, upload, path, &temp).await;
        if result.is_ok() {
            if let Ok(mut temps) = self.temps.lock() {
                temps.remove(&temp);
            }
        } else if matches!(
            result,
            Err(StepError::Client(ClientError::Refused { .. }) | StepError::Corrupted(_))
        ) && client.delete(&temp).await.is_ok()
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
    ) -> Result<bool, StepError> {
        let algorithm = verification_algorithm(client);
        let (sent, digest) = match self.store_blob(client, upload, temp, algorithm).await {
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
                self.store_blob(client, upload, temp, algorithm).await?
            }
            other => other?,
        };
        if sent != upload.size {
            return Err(StepError::Fatal(DeployError::Transfer(format!(
                "uploading {path}: sent {sent} bytes, the file has {}",
                upload.size
            ))));
        }
        // Before the file goes live: the server's digest of what it stored must be ours.
        let verified = match (algorithm, digest) {
            (Some(algorithm), Some(ours)) => {
                let theirs = client.hash(temp, algorithm).await?;
                if theirs.hex != ours {
                    return Err(StepError::Corrupted(format!(
                        "uploading {path}: the server's {algorithm} of what it stored is {}, not \
                         {ours}",
                        theirs.hex
                    )));
                }
                true
            }
            _ => false,
        };
        rename_over(client, temp, path).await?;
        self.progress.add_bytes(sent);
        Ok(verified)
    }

    /// Streams the blob from `git cat-file` into STOR `temp`; the bytes sent, and their digest by
    /// `algorithm` when one is asked for.
    async fn store_blob(
        &self,
        client: &mut FtpClient,
        upload: &Upload,
        temp: &str,
        algorithm: Option<HashAlgorithm>,
    ) -> Result<(u64, Option<String>), StepError> {
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
            hasher: algorithm.map(Hasher::new),
        };
        let stored = client.store(temp, &mut source, StoreMode::Replace).await;
        // Take back what this attempt added, whatever happens: the caller counts a success.
        self.progress.take_bytes(source.counted);
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
        Ok((sent, source.hasher.map(Hasher::finish)))
    }
}

/// The digest to check an upload with: the strongest the server's HASH offers (CRC-32 only when
/// nothing else is), or `None` when it offers none.
fn verification_algorithm(client: &FtpClient) -> Option<HashAlgorithm> {
    HashAlgorithm::ALL
        .into_iter()
        .find(|algorithm| client.supports_hash(*algorithm))
}

/// Counts bytes read into the progress as they pass.
struct CountingReader<R> {
    inner: R,
    counted: u64,
    progress: Arc<Progress>,
    /// The digest of what passed, to verify the upload with.
    hasher: Option<Hasher>,
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
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf.filled()[before..]);
        }
        self.counted += added;
        self.progress.add_bytes(added);
        poll
    }
}
