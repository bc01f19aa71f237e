//! The transfer log in wu-ftpd's xferlog format (xferlog(5)): one line per finished or aborted
//! file transfer, in a file of its own that log analysers (webalizer, AWStats, fail2ban filters)
//! already read.
//!
//! Transfers never wait for the disk: a line goes into a bounded channel that a writer thread
//! empties; when the channel is full the line is dropped and counted, with a warning. SIGHUP
//! (after logrotate moved the file) makes the writer reopen the path, so the next line starts the
//! new file.
//!
//! A line has fourteen fields, the first of them five words of `ctime(3)`:
//!
//! ```text
//! Mon Dec  7 20:22:41 2026 1 192.0.2.7 1048576 /site/index.html b _ o r alice ftp 0 * c
//! ```
//!
//! current-time (UTC), transfer-time (whole seconds, rounded up), remote-host, file-size (bytes
//! moved), filename (the path the user sees, white space and control characters as `_` so the
//! fields stay split on spaces), transfer-type (`a` ASCII, `b` binary), special-action-flag (`_`:
//! none), direction (`o` out, `i` in), access-mode (`r` an account, `a` anonymous),
//! username (`anonymous` for anonymous logins: the e-mail address typed as a password is not
//! logged), service-name (`ftp`), authentication-method (`0`: none), authenticated-user-id
//! (`*`: none) and completion-status (`c` complete, `i` incomplete).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::metrics::TransferOutcome;
use super::session::{Session, TransferInfo};
use crate::protocol::command::TransferType;
use crate::protocol::time::UtcDateTime;

/// Lines waiting for the writer at most; more are dropped, never waited for.
const CHANNEL_LINES: usize = 4096;

/// Which way the bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XferDirection {
    Outgoing,
    Incoming,
}

/// How the user logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    Real,
    Anonymous,
}

/// One transfer, as the log line describes it.
#[derive(Debug, Clone)]
pub struct XferRecord<'a> {
    /// When it ended.
    pub finished: SystemTime,
    pub duration: Duration,
    pub remote: IpAddr,
    pub bytes: u64,
    pub path: &'a str,
    pub ascii: bool,
    pub direction: XferDirection,
    pub access: AccessMode,
    pub user: &'a str,
    pub complete: bool,
}

impl XferRecord<'_> {
    /// The line, without its newline.
    pub fn to_line(&self) -> String {
        let secs = self
            .finished
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let transfer_secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        format!(
            "{} {transfer_secs} {} {} {} {} _ {} {} {} ftp 0 * {}",
            ctime(secs),
            self.remote.to_canonical(),
            self.bytes,
            field(self.path),
            if self.ascii { 'a' } else { 'b' },
            match self.direction {
                XferDirection::Outgoing => 'o',
                XferDirection::Incoming => 'i',
            },
            match self.access {
                AccessMode::Real => 'r',
                AccessMode::Anonymous => 'a',
            },
            field(self.user),
            if self.complete { 'c' } else { 'i' },
        )
    }
}

/// `Mon Dec  7 20:22:41 2026`: ctime(3)'s layout, the day of the month padded with a space.
fn ctime(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let time = UtcDateTime::from_unix(i64::try_from(unix_secs).unwrap_or(i64::MAX));
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((unix_secs / 86_400) % 7) as usize];
    let month = MONTHS[usize::from(time.month.clamp(1, 12)) - 1];
    format!(
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {}",
        time.day, time.hour, time.minute, time.second, time.year
    )
}

/// A value that must stay one field: white space and control characters become `_`.
fn field(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// What goes to the writer.
enum Message {
    Line(String),
    Reopen,
}

/// The handle sessions record transfers through.
#[derive(Debug)]
pub struct XferLog {
    path: PathBuf,
    sender: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(_) => f.write_str("Line"),
            Self::Reopen => f.write_str("Reopen"),
        }
    }
}

impl XferLog {
    /// Opens (creates, appends to) the file at `path` and starts its writer thread. Fails if the
    /// file cannot be opened, so a wrong path stops the server at start.
    pub fn open(path: &Path) -> io::Result<Arc<Self>> {
        let file = open_append(path)?;
        let (log, receiver) = Self::with_capacity(path, CHANNEL_LINES);
        let writer_path = path.to_owned();
        std::thread::Builder::new()
            .name("ferry-xferlog".to_owned())
            .spawn(move || write_lines(&writer_path, file, receiver))?;
        Ok(log)
    }

    fn with_capacity(path: &Path, lines: usize) -> (Arc<Self>, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(lines);
        let log = Arc::new(Self {
            path: path.to_owned(),
            sender,
            dropped: AtomicU64::new(0),
        });
        (log, receiver)
    }

    /// Queues the line of one transfer; never waits. A full queue drops it and counts it.
    pub fn record(&self, record: &XferRecord<'_>) {
        if self
            .sender
            .try_send(Message::Line(record.to_line()))
            .is_err()
        {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One warning for the first and then one per hundred, not one per transfer.
            if dropped == 1 || dropped.is_multiple_of(100) {
                warn!(
                    xferlog = %self.path.display(),
                    dropped,
                    "the xferlog writer is behind (is its disk slow or full?); transfer lines were dropped"
                );
            }
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to close the file and open the path again (after logrotate moved it).
    /// Waits for room in the queue: the caller is the signal handler, not a transfer.
    pub async fn reopen(&self) {
        let _ = self.sender.send(Message::Reopen).await;
    }
}

impl Session {
    /// Writes the xferlog line of a finished file transfer (listings have none), if the server
    /// keeps an xferlog.
    pub(crate) fn record_xferlog(
        &self,
        running: &TransferInfo,
        outcome: TransferOutcome,
        bytes: u64,
    ) {
        let Some(log) = &self.server.config.xferlog else {
            return;
        };
        let direction = match running.verb {
            "RETR" => XferDirection::Outgoing,
            "STOR" | "APPE" | "STOU" => XferDirection::Incoming,
            _ => return,
        };
        let Some(user) = self.user() else { return };
        let name = user.details.name.as_str();
        let anonymous = self.server.config.anonymous_home.is_some() && name == "anonymous";
        log.record(&XferRecord {
            finished: SystemTime::now(),
            duration: running.started.elapsed(),
            remote: self.peer.ip(),
            bytes,
            path: running.path.as_str(),
            ascii: self.transfer_type == TransferType::Ascii,
            direction,
            access: if anonymous {
                AccessMode::Anonymous
            } else {
                AccessMode::Real
            },
            user: name,
            complete: matches!(outcome, TransferOutcome::Ok),
        });
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Client addresses and user names: for the operator's group, not everyone.
        options.mode(0o640);
    }
    options.open(path)
}

/// The writer thread: writes lines as they come, flushing whenever the queue is empty, until
/// every handle is gone.
fn write_lines(path: &Path, file: File, mut receiver: mpsc::Receiver<Message>) {
    let mut out = BufWriter::new(file);
    let mut failing = false;
    while let Some(message) = receiver.blocking_recv() {
        let result = match message {
            Message::Line(line) => writeln!(out, "{line}"),
            Message::Reopen => {
                let _ = out.flush();
                match open_append(path) {
                    Ok(file) => {
                        out = BufWriter::new(file);
                        info!(xferlog = %path.display(), "xferlog reopened");
                        Ok(())
                    }
                    Err(error) => {
                        warn!(xferlog = %path.display(), %error, "cannot reopen the xferlog; writing on to the old file");
                        Ok(())
                    }
                }
            }
        };
        let result = result.and_then(|()| {
            if receiver.is_empty() {
                out.flush()
            } else {
                Ok(())
            }
        });
        match result {
            Err(error) if !failing => {
                failing = true;
                warn!(xferlog = %path.display(), %error, "cannot write the xferlog");
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(path: &'a str, user: &'a str) -> XferRecord<'a> {
        XferRecord {
            // 2026-12-07 20:22:41 UTC, a Monday.
            finished: UNIX_EPOCH + Duration::from_secs(1_796_674_961),
            duration: Duration::from_millis(1500),
            remote: "::ffff:192.0.2.7".parse().unwrap(),
            bytes: 1_048_576,
            path,
            ascii: false,
            direction: XferDirection::Outgoing,
            access: AccessMode::Real,
            user,
            complete: true,
        }
    }

    #[test]
    fn lines_have_the_fourteen_fields_of_xferlog_5() {
        let line = record("/site/index.html", "alice").to_line();
        assert_eq!(
            line,
            "Mon Dec  7 20:22:41 2026 2 192.0.2.7 1048576 /site/index.html b _ o r alice ftp 0 * c"
        );
        assert_eq!(line.split_whitespace().count(), 5 + 13);
    }

    #[test]
    fn names_with_spaces_stay_one_field() {
        let mut upload = record("/my photos/a\tb\nc.jpg", "anonymous");
        upload.direction = XferDirection::Incoming;
        upload.access = AccessMode::Anonymous;
        upload.ascii = true;
        upload.complete = false;
        upload.duration = Duration::ZERO;
        let line = upload.to_line();
        assert!(
            line.ends_with(" 0 192.0.2.7 1048576 /my_photos/a_b_c.jpg a _ i a anonymous ftp 0 * i"),
            "{line}"
        );
        assert_eq!(line.split_whitespace().count(), 18);
    }

    #[test]
    fn ctime_pads_the_day_and_knows_the_weekday() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn a_full_queue_drops_lines_instead_of_waiting() {
        let (log, mut receiver) = XferLog::with_capacity(Path::new("unused"), 1);
        for _ in 0..3 {
            log.record(&record("/f", "alice"));
        }
        assert_eq!(log.dropped(), 2);
        assert!(matches!(receiver.try_recv(), Ok(Message::Line(_))));
        assert!(receiver.try_recv().is_err());
    }

    #[tokio::test]
    async fn lines_reach_the_file_and_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xferlog");
        let log = XferLog::open(&path).unwrap();
        log.record(&record("/first", "alice"));
        let rotated = dir.path().join("xferlog.1");
        // Wait for the first line, then rotate as logrotate does.
        wait_for(|| {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("/first")
        });
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen().await;
        log.record(&record("/second", "alice"));
        wait_for(|| {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("/second")
        });
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(old.lines().count(), 1);
        assert!(old.contains("/first"));
    }

    fn wait_for(mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the xferlog writer did not write in time");
    }
}
