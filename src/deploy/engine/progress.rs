//! Where a run stands — files and bytes done, the file under way — and who hears about it: the
//! engine never draws; the caller passes a [`Reporter`] (a terminal line for `deploy push`, log
//! lines and the API's live progress for the service).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::info;

use super::plan::{DeployPlan, human_bytes};

/// Who hears about a run, from the moment its plan is made.
pub trait Reporter: Send + Sync {
    /// The run starts; `progress` is live until it ends.
    fn started(&self, _progress: &Arc<Progress>) {}
    /// `what` ("uploaded", "deleted") was done to `path` (relative to the deploy root).
    fn file_done(&self, what: &str, path: &str, size: Option<u64>);
    /// A phase of the deploy began: an upload phase (`new files`, …, `deletes`) or a step of
    /// the whole deploy (`maintenance page up`, `standby copy: changed files`, `swapping
    /// copies`, …). It may come before [`Reporter::started`]: the first steps come before the
    /// plan.
    fn phase(&self, _phase: &str) {}
}

/// Reports each file as a log line, at info level.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogReporter;

impl Reporter for LogReporter {
    fn file_done(&self, what: &str, path: &str, size: Option<u64>) {
        match size {
            Some(size) => info!(path, size, "{what}"),
            None => info!(path, "{what}"),
        }
    }
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
    /// The phase under way (`new files`, `changed files`, `changed entry points`, `deletes`).
    pub phase: String,
}

/// Files and bytes done, for the progress line or the log.
pub struct Progress {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    files_verified: AtomicU64,
    bytes_done: AtomicU64,
    current: Mutex<String>,
    phase: Mutex<String>,
    started: Instant,
}

impl Progress {
    pub fn new(plan: &DeployPlan) -> Arc<Self> {
        Arc::new(Self {
            files_total: (plan.uploads.len() + plan.deletes.len() + plan.clear_files.len()) as u64,
            bytes_total: plan.upload_bytes(),
            files_done: AtomicU64::new(0),
            files_verified: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            phase: Mutex::new(String::new()),
            started: Instant::now(),
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
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }

    pub(crate) fn start(&self, what: &str) {
        if let Ok(mut current) = self.current.lock() {
            what.clone_into(&mut current);
        }
    }

    pub(crate) fn set_phase(&self, phase: &str) {
        if let Ok(mut current) = self.phase.lock() {
            phase.clone_into(&mut current);
        }
    }

    pub(crate) fn file_verified(&self) {
        self.files_verified.fetch_add(1, Ordering::Relaxed);
    }

    /// Uploads whose bytes the server's HASH confirmed.
    pub fn verified(&self) -> u64 {
        self.files_verified.load(Ordering::Relaxed)
    }

    pub(crate) fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn take_bytes(&self, bytes: u64) {
        self.bytes_done.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// `12/40 files  1.2 MiB/3.4 MiB  800 KiB/s  css/site.css`: a progress line.
    pub fn line(&self) -> String {
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
}
