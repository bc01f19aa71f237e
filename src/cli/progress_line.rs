//! How `ferry deploy push` shows a run: on a terminal, one progress line redrawn in place (the
//! files themselves at debug level); elsewhere, a log line per file.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::deploy::engine::progress::{Progress, Reporter};

/// The [`Reporter`] of the command line.
pub struct ProgressLine {
    terminal: bool,
    done: Arc<Notify>,
    drawer: Mutex<Option<JoinHandle<()>>>,
}

impl ProgressLine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            terminal: std::io::stderr().is_terminal(),
            done: Arc::new(Notify::new()),
            drawer: Mutex::new(None),
        })
    }

    /// Stops redrawing and leaves the final line, before the command prints its result.
    pub async fn finish(&self) {
        self.done.notify_one();
        let drawer = self.drawer.lock().ok().and_then(|mut d| d.take());
        if let Some(drawer) = drawer {
            let _ = drawer.await;
        }
    }
}

impl Reporter for ProgressLine {
    fn started(&self, progress: &Arc<Progress>) {
        if !self.terminal {
            return;
        }
        let progress = Arc::clone(progress);
        let done = Arc::clone(&self.done);
        let drawer = tokio::spawn(async move {
            loop {
                let width = terminal_width();
                let line: String = progress
                    .line()
                    .chars()
                    .take(width.saturating_sub(1))
                    .collect();
                eprint!("\r\x1b[2K{line}");
                tokio::select! {
                    () = done.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            eprintln!("\r\x1b[2K{}", progress.line());
        });
        if let Ok(mut slot) = self.drawer.lock() {
            *slot = Some(drawer);
        }
    }

    fn file_done(&self, what: &str, path: &str, size: Option<u64>) {
        if self.terminal {
            debug!(path, "{what}");
        } else {
            match size {
                Some(size) => info!(path, size, "{what}"),
                None => info!(path, "{what}"),
            }
        }
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}
