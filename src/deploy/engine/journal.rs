//! The per-file journal of a deploy in progress, on local disk and keyed by the target URL: every
//! upload and delete that completed is appended as one JSON line, so a deploy that failed half-way
//! resumes without redoing them. The journal belongs to one deployed commit (the marker's); when
//! the marker moves, or names another commit, the journal starts over. It is removed once the
//! marker is written.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    target: String,
    /// The commit the target held when the journal began (`None`: no marker).
    from: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Entry {
    Upload { path: String, blob: String },
    Delete { path: String },
}

/// What earlier, unfinished runs completed.
#[derive(Debug, Default, Clone)]
pub struct JournalState {
    uploads: HashMap<String, String>,
    deletes: HashSet<String>,
}

impl JournalState {
    /// Reads journal text; anything other than a matching header gives an empty state, and a
    /// torn last line (a crash mid-write) is skipped.
    pub fn parse(text: &str, target: &str, from: Option<&str>) -> Self {
        let mut lines = text.lines();
        let header: Option<Header> = lines.next().and_then(|l| serde_json::from_str(l).ok());
        let mut state = Self::default();
        match header {
            Some(h) if h.target == target && h.from.as_deref() == from => {}
            _ => return state,
        }
        for line in lines {
            match serde_json::from_str(line) {
                Ok(Entry::Upload { path, blob }) => {
                    state.deletes.remove(&path);
                    state.uploads.insert(path, blob);
                }
                Ok(Entry::Delete { path }) => {
                    state.uploads.remove(&path);
                    state.deletes.insert(path);
                }
                Err(_) => {}
            }
        }
        state
    }

    pub fn is_empty(&self) -> bool {
        self.uploads.is_empty() && self.deletes.is_empty()
    }

    /// True when `blob` was already uploaded to `path`.
    pub fn upload_done(&self, path: &str, blob: &str) -> bool {
        self.uploads.get(path).is_some_and(|b| b == blob)
    }

    pub fn delete_done(&self, path: &str) -> bool {
        self.deletes.contains(path)
    }

    /// Every path an unfinished run changed on the target: the next plan must settle each of them,
    /// even if the commit being deployed changed in between.
    pub fn touched_paths(&self) -> BTreeSet<String> {
        self.uploads
            .keys()
            .chain(self.deletes.iter())
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.uploads.len() + self.deletes.len()
    }
}

/// The journal file of one target, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Where the journal of `target` (a URL without password) lives under `state_dir`.
    pub fn path_for(state_dir: &Path, target: &str) -> PathBuf {
        let digest = hex_prefix(&Sha256::digest(target.as_bytes()));
        state_dir.join("journal").join(format!("{digest}.jsonl"))
    }

    /// Reads what the journal at `path` holds for this target and deployed commit.
    pub fn load(path: &Path, target: &str, from: Option<&str>) -> std::io::Result<JournalState> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(JournalState::parse(&text, target, from)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JournalState::default()),
            Err(e) => Err(e),
        }
    }

    /// Opens the journal for appending; a journal for another deployed commit is replaced.
    pub fn open(path: &Path, target: &str, from: Option<&str>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            // Private: journals name the target's files.
            crate::private_files::create_private_dir_all(dir)?;
        }
        let keep = !Self::load(path, target, from)?.is_empty();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if !keep {
            file.set_len(0)?;
            let header = Header {
                target: target.to_owned(),
                from: from.map(str::to_owned),
            };
            writeln!(file, "{}", serde_json::to_string(&header)?)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    pub fn record_upload(&mut self, path: &str, blob: &str) -> std::io::Result<()> {
        self.append(&Entry::Upload {
            path: path.to_owned(),
            blob: blob.to_owned(),
        })
    }

    pub fn record_delete(&mut self, path: &str) -> std::io::Result<()> {
        self.append(&Entry::Delete {
            path: path.to_owned(),
        })
    }

    fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        // One write per line, so a crash tears at most the last line.
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }

    /// The deploy is complete and the marker written: the journal has nothing left to say.
    pub fn remove(self) -> std::io::Result<()> {
        drop(self.file);
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The directory for ferry's local state: `FERRY_STATE_DIR`, else `$XDG_STATE_HOME/ferry`, else
/// `~/.local/state/ferry`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ferry");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/ferry")
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "ftp://alice@example.com:21/site";

    #[test]
    fn journal_remembers_completed_work_for_the_same_deployed_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_for(dir.path(), TARGET);
        let mut journal = Journal::open(&path, TARGET, Some("c1")).unwrap();
        journal.record_upload("a.txt", "b1").unwrap();
        journal.record_delete("old.txt").unwrap();
        drop(journal);

        let state = Journal::load(&path, TARGET, Some("c1")).unwrap();
        assert!(state.upload_done("a.txt", "b1"));
        assert!(
            !state.upload_done("a.txt", "b2"),
            "another version of the file"
        );
        assert!(state.delete_done("old.txt"));
        assert_eq!(
            state.touched_paths().into_iter().collect::<Vec<_>>(),
            ["a.txt", "old.txt"]
        );

        // Reopening keeps the entries; another deployed commit starts over.
        let mut journal = Journal::open(&path, TARGET, Some("c1")).unwrap();
        journal.record_upload("b.txt", "b3").unwrap();
        drop(journal);
        assert_eq!(Journal::load(&path, TARGET, Some("c1")).unwrap().len(), 3);
        assert!(Journal::load(&path, TARGET, Some("c2")).unwrap().is_empty());
        assert!(
            Journal::load(&path, "ftp://other/", Some("c1"))
                .unwrap()
                .is_empty()
        );
        let journal = Journal::open(&path, TARGET, None).unwrap();
        assert!(Journal::load(&path, TARGET, None).unwrap().is_empty());
        journal.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let text = format!(
            "{}\n{}\n{{\"op\":\"upl",
            r#"{"target":"t","from":null}"#, r#"{"op":"upload","path":"x","blob":"1"}"#
        );
        let state = JournalState::parse(&text, "t", None);
        assert!(state.upload_done("x", "1"));
        assert_eq!(state.len(), 1);
    }
}
