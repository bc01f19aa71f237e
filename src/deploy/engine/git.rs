//! The git repository a deploy reads from: the `git` command's plumbing (`-z` output, so any file
//! name survives) behind the [`RepoSource`] trait. Nothing here talks to the network or the target.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A full commit or blob id, as git prints it.
pub type ObjectId = String;

/// Why git could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git ({0}); is git installed and on PATH?")]
    Spawn(std::io::Error),
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("cannot read `git {command}` output: {detail}")]
    Output { command: String, detail: String },
    #[error("{0} is not a commit in this repository")]
    UnknownRevision(String),
    /// A tree path that git never checks out but a crafted commit can hold: deploying it could
    /// reach outside the deploy root.
    #[error(
        "the commit holds the path {0:?}, which would leave the deploy directory (git never \
         checks such a path out; the commit was crafted); refusing to deploy it"
    )]
    UnsafePath(String),
}

/// One file of a commit's tree (`git ls-tree -r -l`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Slash-separated, relative to the repository root.
    pub path: String,
    pub kind: EntryKind,
    pub blob: ObjectId,
    pub size: u64,
}

/// What a tree entry is, from its git mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Executable,
    /// A symbolic link; FTP cannot create one.
    Symlink,
    /// A submodule (a commit of another repository); nothing to upload.
    Submodule,
}

impl EntryKind {
    fn from_mode(mode: &str) -> Option<Self> {
        match mode {
            "100644" | "100664" => Some(Self::File),
            "100755" => Some(Self::Executable),
            "120000" => Some(Self::Symlink),
            "160000" => Some(Self::Submodule),
            _ => None,
        }
    }

    /// True for entries whose content is uploaded as a regular file.
    pub fn is_regular(self) -> bool {
        matches!(self, Self::File | Self::Executable)
    }
}

/// How one path changed between two commits (`git diff-tree --no-renames`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Added, modified or changed type: the new version is uploaded.
    Upserted {
        path: String,
    },
    Deleted {
        path: String,
    },
}

/// What the deploy needs from a repository.
pub trait RepoSource: Send + Sync {
    /// The full commit id `revision` names (a branch, tag or abbreviated id).
    fn resolve(&self, revision: &str) -> Result<ObjectId, GitError>;
    /// Whether `commit` exists in the repository at all (a force push may have dropped it).
    fn has_commit(&self, commit: &str) -> Result<bool, GitError>;
    /// Whether `ancestor` is an ancestor of (or equal to) `descendant`.
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError>;
    /// Every file of `commit`'s tree, recursively.
    fn tree(&self, commit: &str) -> Result<Vec<TreeEntry>, GitError>;
    /// The file-level changes from `from` to `to`; renames come as delete + add.
    fn changes(&self, from: &str, to: &str) -> Result<Vec<Change>, GitError>;
    /// The whole content of a blob (small files such as `.ferryignore`).
    fn read_blob(&self, blob: &str) -> Result<Vec<u8>, GitError>;
    /// A command whose standard output streams the content of `blob`.
    fn blob_command(&self, blob: &str) -> tokio::process::Command;
}

/// One commit as `git log` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: ObjectId,
    /// The whole message.
    pub message: String,
    pub author: String,
    pub author_email: Option<String>,
    /// The author date, ISO 8601.
    pub timestamp: String,
}

/// A `git` command for the async runtime that never pages, prompts for credentials or
/// translates the messages we may parse, with no standard input; killed if dropped.
pub fn async_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new("git");
    command
        .env("GIT_PAGER", "cat")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `git -C dir ARGS` on the async runtime; its standard output.
pub async fn run_async(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let output = async_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    checked(args, output)
}

/// [`run_async`] with `input` on standard input.
pub async fn run_async_with_input(
    dir: &Path,
    args: &[&str],
    input: Vec<u8>,
) -> Result<Vec<u8>, GitError> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = async_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).await.map_err(GitError::Spawn)?;
    }
    let output = child.wait_with_output().await.map_err(GitError::Spawn)?;
    checked(args, output)
}

fn checked(args: &[&str], output: std::process::Output) -> Result<Vec<u8>, GitError> {
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(GitError::Failed {
        command: args.join(" "),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// A repository on local disk, read through the `git` command.
#[derive(Debug, Clone)]
pub struct GitCli {
    dir: PathBuf,
}

impl GitCli {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.dir)
            // Never page, never ask for credentials, never translate messages we may parse.
            .env("GIT_PAGER", "cat")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    /// Runs git with `args`; `Ok(None)` when it exits 1 and `allow_one` (git's "no" answer).
    fn run(&self, args: &[&str], allow_one: bool) -> Result<Option<Vec<u8>>, GitError> {
        let output = self
            .command()
            .args(args)
            .output()
            .map_err(GitError::Spawn)?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        if allow_one && output.status.code() == Some(1) {
            return Ok(None);
        }
        Err(GitError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    fn run_ok(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        Ok(self.run(args, false)?.unwrap_or_default())
    }

    /// The commits reachable from `to` but not from `from` (all of `to`'s history without it),
    /// newest first, at most `limit`.
    pub fn log(
        &self,
        from: Option<&str>,
        to: &str,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, GitError> {
        let range = match from {
            Some(from) => format!("{from}..{to}"),
            None => to.to_owned(),
        };
        let max = format!("--max-count={limit}");
        let output = self.run_ok(&[
            "log",
            &max,
            "-z",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%B",
            "--end-of-options",
            &range,
            "--",
        ])?;
        // `-z` ends each commit with a NUL, after the five NUL-separated fields.
        let text = String::from_utf8_lossy(&output);
        let mut fields = text.split('\0');
        let mut commits = Vec::new();
        while let Some(id) = fields.next() {
            let id = id.trim();
            if id.is_empty() {
                break;
            }
            let mut next = || fields.next().unwrap_or_default().trim().to_owned();
            let (author, email, timestamp, message) = (next(), next(), next(), next());
            commits.push(CommitInfo {
                id: id.to_owned(),
                message,
                author,
                author_email: (!email.is_empty()).then_some(email),
                timestamp,
            });
        }
        Ok(commits)
    }
}

impl RepoSource for GitCli {
    fn resolve(&self, revision: &str) -> Result<ObjectId, GitError> {
        let spec = format!("{revision}^{{commit}}");
        let output = self
            .command()
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ])
            .output()
            .map_err(GitError::Spawn)?;
        if !output.status.success() {
            // Tell "no such revision" from "no repository here".
            self.run_ok(&["rev-parse", "--git-dir"])?;
            return Err(GitError::UnknownRevision(revision.to_owned()));
        }
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if id.is_empty() {
            return Err(GitError::UnknownRevision(revision.to_owned()));
        }
        Ok(id)
    }

    fn has_commit(&self, commit: &str) -> Result<bool, GitError> {
        let spec = format!("{commit}^{{commit}}");
        let status = self
            .command()
            .args(["cat-file", "-e", &spec])
            .stderr(Stdio::null())
            .status()
            .map_err(GitError::Spawn)?;
        Ok(status.success())
    }

    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        Ok(self
            .run(&["merge-base", "--is-ancestor", ancestor, descendant], true)?
            .is_some())
    }

    fn tree(&self, commit: &str) -> Result<Vec<TreeEntry>, GitError> {
        let output = self.run_ok(&["ls-tree", "-r", "-z", "-l", "--full-tree", commit])?;
        parse_ls_tree(&output).map_err(|e| e.into_git("ls-tree"))
    }

    fn changes(&self, from: &str, to: &str) -> Result<Vec<Change>, GitError> {
        let output = self.run_ok(&["diff-tree", "-r", "-z", "--no-renames", from, to])?;
        parse_diff_tree(&output).map_err(|e| e.into_git("diff-tree"))
    }

    fn read_blob(&self, blob: &str) -> Result<Vec<u8>, GitError> {
        self.run_ok(&["cat-file", "blob", blob])
    }

    fn blob_command(&self, blob: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::from(self.command());
        command
            .args(["cat-file", "blob", blob])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// Whether `path` (slash-separated, from a tree) stays inside the directory it is relative to:
/// not empty, not absolute, no empty, `.` or `..` segment. A backslash counts as a separator too,
/// because some FTP servers (IIS, Windows builds of FileZilla Server) treat it as one.
pub fn is_contained_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split(['/', '\\'])
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// A path of a tree listing or a diff: UTF-8 and contained, whatever the entry's type.
fn tree_path(raw: &[u8]) -> Result<String, TreePathError> {
    let path = String::from_utf8(raw.to_vec()).map_err(|_| {
        TreePathError::Format(format!(
            "the file name {:?} is not UTF-8; FTP servers cannot be given it reliably",
            String::from_utf8_lossy(raw)
        ))
    })?;
    if !is_contained_path(&path) {
        return Err(TreePathError::Unsafe(path));
    }
    Ok(path)
}

/// Why git's output could not be turned into entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreePathError {
    /// The output is not what git prints.
    Format(String),
    /// An entry's path would leave the deploy root.
    Unsafe(String),
}

impl From<String> for TreePathError {
    fn from(detail: String) -> Self {
        Self::Format(detail)
    }
}

impl TreePathError {
    fn into_git(self, command: &str) -> GitError {
        match self {
            Self::Format(detail) => GitError::Output {
                command: command.to_owned(),
                detail,
            },
            Self::Unsafe(path) => GitError::UnsafePath(path),
        }
    }
}

/// Parses `git ls-tree -r -z -l`: `<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL`.
pub fn parse_ls_tree(output: &[u8]) -> Result<Vec<TreeEntry>, TreePathError> {
    let mut entries = Vec::new();
    for record in output.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let tab = memchr::memchr(b'\t', record)
            .ok_or_else(|| format!("no tab in {:?}", String::from_utf8_lossy(record)))?;
        let meta = std::str::from_utf8(&record[..tab]).map_err(|e| e.to_string())?;
        let path = tree_path(&record[tab + 1..])?;
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, _kind, object, size] = fields[..] else {
            return Err(format!("unexpected entry {meta:?}").into());
        };
        let Some(kind) = EntryKind::from_mode(mode) else {
            return Err(format!("unknown mode {mode} for {path}").into());
        };
        let size = if size == "-" {
            0
        } else {
            size.parse()
                .map_err(|_| format!("bad size {size:?} for {path}"))?
        };
        entries.push(TreeEntry {
            path,
            kind,
            blob: object.to_owned(),
            size,
        });
    }
    Ok(entries)
}

/// Parses `git diff-tree -r -z --no-renames A B`:
/// `:<mode> <mode> <sha> <sha> <status> NUL <path> NUL` per change.
pub fn parse_diff_tree(output: &[u8]) -> Result<Vec<Change>, TreePathError> {
    let mut changes = Vec::new();
    let mut fields = output.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let meta = std::str::from_utf8(meta).map_err(|e| e.to_string())?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [_old_mode, _new_mode, _old, _new, status] = parts[..] else {
            return Err(format!("unexpected change {meta:?}").into());
        };
        let path = fields
            .next()
            .ok_or_else(|| format!("no path after {meta:?}"))?;
        let path = tree_path(path)?;
        match status.chars().next() {
            // Whatever the new entry is: a file that became a symlink or a submodule is not
            // deleted but left to the planner, which skips and reports what FTP cannot create.
            Some('A' | 'M' | 'T') => changes.push(Change::Upserted { path }),
            Some('D') => changes.push(Change::Deleted { path }),
            _ => return Err(format!("unexpected status {status:?} for {path}").into()),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_tree_records_keep_spaces_tabs_and_unicode_in_names() {
        let output =
            b"100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391       0\tdir/a b#c.txt\0\
100755 blob 0123456789012345678901234567890123456789    1234\t\xc3\xa9t\xc3\xa9/run.sh\0\
160000 commit 1111111111111111111111111111111111111111       -\tvendor/lib\0";
        let entries = parse_ls_tree(output).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].path, "dir/a b#c.txt");
        assert_eq!(entries[0].size, 0);
        assert_eq!(entries[1].path, "été/run.sh");
        assert_eq!(entries[1].kind, EntryKind::Executable);
        assert_eq!(entries[1].size, 1234);
        assert_eq!(entries[2].kind, EntryKind::Submodule);
    }

    #[test]
    fn diff_tree_statuses_become_uploads_and_deletes_and_a_type_change_is_never_a_delete() {
        let z = "0000000000000000000000000000000000000000";
        let a = "1111111111111111111111111111111111111111";
        let output = format!(
            ":000000 100644 {z} {a} A\0new file.txt\0:100644 100644 {a} {a} M\0x/mod\0\
:100644 000000 {a} {z} D\0gone\0:100644 120000 {a} {a} T\0now-a-link\0"
        );
        assert_eq!(
            parse_diff_tree(output.as_bytes()).unwrap(),
            vec![
                Change::Upserted {
                    path: "new file.txt".into()
                },
                Change::Upserted {
                    path: "x/mod".into()
                },
                Change::Deleted {
                    path: "gone".into()
                },
                Change::Upserted {
                    path: "now-a-link".into()
                },
            ]
        );
    }

    #[test]
    fn non_utf8_names_are_refused_with_a_reason() {
        let error = parse_ls_tree(b"100644 blob aaaa 1\t\xff\0").unwrap_err();
        assert!(
            matches!(&error, TreePathError::Format(detail) if detail.contains("not UTF-8")),
            "{error:?}"
        );
    }

    #[test]
    fn paths_that_leave_the_root_are_refused_for_every_entry_type_and_in_diffs() {
        for path in [
            "..",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a/",
            "",
            "..\\x",
            "a\\..\\..\\x",
        ] {
            for mode in ["100644 blob", "120000 blob", "160000 commit"] {
                let record = format!("{mode} aaaa 1\t{path}\0");
                assert_eq!(
                    parse_ls_tree(record.as_bytes()),
                    Err(TreePathError::Unsafe(path.to_owned())),
                    "{mode} {path:?}"
                );
            }
            let z = "0000000000000000000000000000000000000000";
            let change = format!(":100644 000000 {z} {z} D\0{path}\0");
            assert_eq!(
                parse_diff_tree(change.as_bytes()),
                Err(TreePathError::Unsafe(path.to_owned())),
                "deleting {path:?}"
            );
        }
        for path in ["a..b", "..hidden", "x/...", "a\\b.txt", "ü/é"] {
            assert!(is_contained_path(path), "{path:?}");
        }
    }
}
