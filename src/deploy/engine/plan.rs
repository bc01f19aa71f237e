//! The deploy planner, pure: what the target holds (a deployed commit's tree and the changes since,
//! or a listing of the server), what it should hold (the target commit's tree), the ignore rules and
//! the journal of an unfinished run → an ordered [`DeployPlan`]. No git, no network, no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::git::{Change, EntryKind, TreeEntry, is_contained_path};
use super::ignore_rules::IgnoreRules;
use super::journal::JournalState;
use super::order::{EntryPoints, Order, UploadPhase};

/// The files and directories found on the server under the deploy root (relative paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTree {
    pub files: BTreeMap<String, u64>,
    pub dirs: BTreeSet<String>,
}

/// What the planner knows about the target's current content.
#[derive(Debug, Clone, Copy)]
pub enum Basis<'a> {
    /// Nothing deployed (no marker, or `--init`): upload the whole tree.
    Fresh,
    /// The deployed commit is an ancestor of the target: its tree and the changes since.
    Ancestor {
        commit: &'a str,
        tree: &'a [TreeEntry],
        changes: &'a [Change],
    },
    /// History was rewritten (force push) or the ignore rules changed: compare the target tree
    /// with what the server lists. `changed` holds the paths that differ between the deployed and
    /// the target commit when the deployed commit is still known locally; without it, every
    /// file is uploaded again (sizes alone cannot prove two files equal).
    Listing {
        commit: Option<&'a str>,
        remote: &'a RemoteTree,
        changed: Option<&'a BTreeSet<String>>,
    },
}

/// How the plan was made, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    Fresh,
    Incremental,
    FullComparison,
}

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub path: String,
    pub blob: String,
    pub size: u64,
    /// When it goes out ([`super::order`]).
    pub phase: UploadPhase,
}

/// What a deploy does, in the order it does it. Paths are relative to the deploy root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    pub from: Option<String>,
    pub to: String,
    pub kind: PlanKind,
    /// Files where the target commit has a directory: deleted before anything else.
    pub clear_files: Vec<String>,
    /// Directories where the target commit has a file: removed (once empty) before uploads.
    pub clear_dirs: Vec<String>,
    /// Directories to create, parents first.
    pub mkdirs: Vec<String>,
    pub uploads: Vec<Upload>,
    pub deletes: Vec<String>,
    /// Directories that may be left empty, deepest first: removed only if the server lists them
    /// empty.
    pub prunes: Vec<String>,
    /// Uploads and deletes an earlier, unfinished run already did.
    pub already_done: usize,
    /// Entries of the target commit that FTP cannot create (symbolic links, submodules): not
    /// uploaded, and whatever the server holds at their paths is left as it is.
    pub skipped: Vec<SkippedEntry>,
}

/// A tree entry the deploy leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub path: String,
    pub kind: EntryKind,
}

impl SkippedEntry {
    /// `symlink x` or `submodule y`.
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            EntryKind::Symlink => "symlink",
            EntryKind::Submodule => "submodule",
            EntryKind::File | EntryKind::Executable => "file",
        };
        format!("{kind} {}", self.path)
    }
}

impl DeployPlan {
    pub fn is_empty(&self) -> bool {
        self.clear_files.is_empty()
            && self.clear_dirs.is_empty()
            && self.uploads.is_empty()
            && self.deletes.is_empty()
            && self.prunes.is_empty()
            && self.mkdirs.is_empty()
    }

    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.size).sum()
    }
}

impl DeployPlan {
    /// One line: what the plan does, in counts.
    pub fn summary(&self) -> String {
        let deletes = self.deletes.len() + self.clear_files.len();
        let mut parts = vec![
            format!(
                "{} to upload ({})",
                self.uploads.len(),
                human_bytes(self.upload_bytes())
            ),
            format!("{deletes} to delete"),
        ];
        if !self.mkdirs.is_empty() {
            parts.push(format!("{} directories to create", self.mkdirs.len()));
        }
        let prunes = self.prunes.len() + self.clear_dirs.len();
        if prunes > 0 {
            parts.push(format!("{prunes} directories to remove if empty"));
        }
        if self.already_done > 0 {
            parts.push(format!(
                "{} already done by an unfinished run",
                self.already_done
            ));
        }
        if !self.skipped.is_empty() {
            parts.push(format!(
                "{} symlinks or submodules skipped (FTP cannot create them)",
                self.skipped.len()
            ));
        }
        parts.join(", ")
    }

    /// Every step, one per line, in the order they run.
    pub fn steps(&self) -> Vec<String> {
        let mut steps = Vec::new();
        steps.extend(self.clear_files.iter().map(|p| format!("delete  {p}")));
        steps.extend(
            self.clear_dirs
                .iter()
                .map(|d| format!("rmdir   {d}/ (if empty)")),
        );
        steps.extend(self.mkdirs.iter().map(|d| format!("mkdir   {d}/")));
        steps.extend(self.uploads.iter().map(|u| {
            format!(
                "upload  {} ({})  [{}]",
                u.path,
                human_bytes(u.size),
                u.phase.describe()
            )
        }));
        steps.extend(self.deletes.iter().map(|p| format!("delete  {p}")));
        steps.extend(
            self.prunes
                .iter()
                .map(|d| format!("rmdir   {d}/ (if empty)")),
        );
        steps.extend(
            self.skipped
                .iter()
                .map(|s| format!("skip    {} (FTP cannot create it)", s.describe())),
        );
        steps
    }
}

/// `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A tree the plan cannot deploy.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the file name {0:?} contains a line break, which FTP cannot send; rename it or ignore it in .ferryignore"
    )]
    UnsendableName(String),
    #[error(
        "the tree holds the path {0:?}, which would leave the deploy directory; refusing to deploy it"
    )]
    UnsafePath(String),
}

/// Everything the planner needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub target_commit: &'a str,
    pub target_tree: &'a [TreeEntry],
    pub basis: Basis<'a>,
    pub rules: &'a IgnoreRules,
    pub journal: &'a JournalState,
    /// Which files are entry points, and whether uploads go out in phases.
    pub entry_points: &'a EntryPoints,
    pub order: Order,
}

/// Makes the plan.
pub fn plan(input: PlanInput<'_>) -> Result<DeployPlan, PlanError> {
    let rules = input.rules;
    let target_files: BTreeMap<&str, &TreeEntry> = input
        .target_tree
        .iter()
        .filter(|e| e.kind.is_regular() && !rules.is_ignored(&e.path))
        .map(|e| (e.path.as_str(), e))
        .collect();
    // git itself never checks out a path that leaves the root, and the tree parser refuses one;
    // the check here keeps the planner safe on its own, for every entry type.
    if let Some(entry) = input
        .target_tree
        .iter()
        .find(|e| !is_contained_path(&e.path))
    {
        return Err(PlanError::UnsafePath(entry.path.clone()));
    }
    for path in target_files.keys() {
        if path.contains(['\r', '\n']) {
            return Err(PlanError::UnsendableName((*path).to_owned()));
        }
    }
    // Symlinks and submodules: reported, never uploaded, and never a reason to delete what the
    // server holds at (or, for a submodule, under) their paths.
    let skipped: Vec<SkippedEntry> = input
        .target_tree
        .iter()
        .filter(|e| !e.kind.is_regular() && !rules.is_ignored(&e.path))
        .map(|e| SkippedEntry {
            path: e.path.clone(),
            kind: e.kind,
        })
        .collect();
    let unmanaged = |path: &str| {
        skipped
            .iter()
            .any(|s| s.path == path || parents(path).any(|dir| dir == s.path))
    };
    let target_dirs: BTreeSet<String> = target_files
        .keys()
        .flat_map(|p| parents(p))
        .map(str::to_owned)
        .collect();

    let mut uploads: BTreeSet<&str> = BTreeSet::new();
    let mut deletes: BTreeSet<String> = BTreeSet::new();
    // Directories the target holds now (as far as we know) and files it holds.
    let old_dirs: BTreeSet<String>;
    // The files the target holds now, where known: an upload of any other path is new.
    let old_files: Option<BTreeSet<&str>>;
    let mut prune_candidates: BTreeSet<String> = BTreeSet::new();
    let (from, kind) = match input.basis {
        Basis::Fresh => {
            uploads.extend(target_files.keys());
            old_dirs = BTreeSet::new();
            old_files = None;
            (None, PlanKind::Fresh)
        }
        Basis::Ancestor {
            commit,
            tree,
            changes,
        } => {
            old_dirs = tree
                .iter()
                .filter(|e| e.kind.is_regular() && !rules.is_ignored(&e.path))
                .flat_map(|e| parents(&e.path))
                .map(str::to_owned)
                .collect();
            old_files = Some(
                tree.iter()
                    .filter(|e| e.kind.is_regular())
                    .map(|e| e.path.as_str())
                    .collect(),
            );
            for change in changes {
                match change {
                    Change::Upserted { path } => {
                        if let Some((key, _)) = target_files.get_key_value(path.as_str()) {
                            uploads.insert(key);
                        }
                    }
                    Change::Deleted { path } => {
                        if !rules.is_ignored(path) {
                            deletes.insert(path.clone());
                        }
                    }
                }
            }
            (Some(commit.to_owned()), PlanKind::Incremental)
        }
        Basis::Listing {
            commit,
            remote,
            changed,
        } => {
            old_dirs = remote.dirs.clone();
            old_files = Some(remote.files.keys().map(String::as_str).collect());
            for (path, entry) in &target_files {
                let same_size = remote.files.get(*path) == Some(&entry.size);
                let unchanged = changed.is_some_and(|c| !c.contains(*path));
                if !(same_size && unchanged) {
                    uploads.insert(path);
                }
            }
            for path in remote.files.keys() {
                if !target_files.contains_key(path.as_str()) && !rules.is_ignored(path) {
                    deletes.insert(path.clone());
                }
            }
            for dir in &remote.dirs {
                if !target_dirs.contains(dir) && !rules.is_ignored_dir(dir) {
                    prune_candidates.insert(dir.clone());
                }
            }
            (commit.map(str::to_owned), PlanKind::FullComparison)
        }
    };

    // Paths an unfinished earlier run changed must end up as the target commit has them, even
    // when this run deploys another commit than that one did.
    for path in input.journal.touched_paths() {
        if let Some((key, _)) = target_files.get_key_value(path.as_str()) {
            uploads.insert(key);
        } else if !rules.is_ignored(&path) {
            deletes.insert(path);
        }
    }
    // A path cannot be both; the target commit's file wins.
    deletes.retain(|p| !target_files.contains_key(p.as_str()) && !unmanaged(p));
    for path in &deletes {
        if !is_contained_path(path) {
            return Err(PlanError::UnsafePath(path.clone()));
        }
        if path.contains(['\r', '\n']) {
            return Err(PlanError::UnsendableName(path.clone()));
        }
    }

    for path in &deletes {
        for dir in parents(path) {
            if !target_dirs.contains(dir) {
                prune_candidates.insert(dir.to_owned());
            }
        }
    }
    prune_candidates
        .retain(|d| !unmanaged(d) && !skipped.iter().any(|s| parents(&s.path).any(|p| p == d)));

    // A file where a directory must be, or a directory where a file must be.
    let blocking_dirs: BTreeSet<&str> = uploads
        .iter()
        .copied()
        .filter(|p| old_dirs.contains(*p) || prune_candidates.contains(*p))
        .collect();
    let under_blocking = |path: &str| {
        blocking_dirs.contains(path) || parents(path).any(|d| blocking_dirs.contains(d))
    };
    let (clear_files, deletes): (Vec<String>, Vec<String>) = deletes
        .into_iter()
        .partition(|p| target_dirs.contains(p) || under_blocking(p));
    let (clear_dirs, prunes): (Vec<String>, Vec<String>) = prune_candidates
        .into_iter()
        .partition(|d| under_blocking(d));

    let mkdirs: Vec<String> = uploads
        .iter()
        .flat_map(|p| parents(p))
        .filter(|d| !old_dirs.contains(*d))
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let journal = input.journal;
    let mut already_done = 0;
    let uploads: Vec<Upload> = uploads
        .into_iter()
        .map(|p| target_files[p])
        .filter(|e| {
            let done = journal.upload_done(&e.path, &e.blob);
            already_done += usize::from(done);
            !done
        })
        .map(|e| {
            let new = old_files
                .as_ref()
                .is_some_and(|old| !old.contains(e.path.as_str()));
            Upload {
                path: e.path.clone(),
                blob: e.blob.clone(),
                size: e.size,
                phase: input.entry_points.phase(input.order, &e.path, new),
            }
        })
        .collect::<Vec<_>>();
    let mut uploads = uploads;
    // Phase by phase; by path within one, as before.
    uploads.sort_by(|a, b| (a.phase, &a.path).cmp(&(b.phase, &b.path)));
    let mut skip_done = |paths: Vec<String>| -> Vec<String> {
        paths
            .into_iter()
            .filter(|p| {
                let done = journal.delete_done(p);
                already_done += usize::from(done);
                !done
            })
            .collect()
    };
    let clear_files = skip_done(clear_files);
    let deletes = skip_done(deletes);

    Ok(DeployPlan {
        from,
        to: input.target_commit.to_owned(),
        kind,
        clear_files,
        clear_dirs: deepest_first(clear_dirs),
        mkdirs,
        uploads,
        deletes,
        prunes: deepest_first(prunes),
        already_done,
        skipped,
    })
}

/// The directories above `path`, nearest first: `a/b/c` → `a/b`, `a`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let cut = rest.rfind('/')?;
        rest = &rest[..cut];
        Some(rest)
    })
}

fn deepest_first(mut dirs: Vec<String>) -> Vec<String> {
    dirs.sort_by(|a, b| {
        let depth = |s: &str| s.matches('/').count();
        depth(b).cmp(&depth(a)).then_with(|| a.cmp(b))
    });
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::engine::git::EntryKind;

    fn tree(files: &[(&str, &str)]) -> Vec<TreeEntry> {
        files
            .iter()
            .map(|(path, blob)| TreeEntry {
                path: (*path).to_owned(),
                kind: EntryKind::File,
                blob: (*blob).to_owned(),
                size: blob.len() as u64,
            })
            .collect()
    }

    fn up(path: &str) -> Change {
        Change::Upserted { path: path.into() }
    }

    fn del(path: &str) -> Change {
        Change::Deleted { path: path.into() }
    }

    fn paths(uploads: &[Upload]) -> Vec<&str> {
        uploads.iter().map(|u| u.path.as_str()).collect()
    }

    fn run(target: &[TreeEntry], basis: Basis<'_>, rules: &IgnoreRules) -> DeployPlan {
        plan(PlanInput {
            target_commit: "t",
            target_tree: target,
            basis,
            rules,
            journal: &JournalState::default(),
            entry_points: &EntryPoints::default(),
            order: Order::Unordered,
        })
        .unwrap()
    }

    #[test]
    fn first_deploy_uploads_every_file_not_ignored_and_makes_its_directories() {
        let target = tree(&[
            ("index.html", "1"),
            ("css/site.css", "2"),
            ("css/img/a b#.png", "3"),
            ("debug.log", "4"),
            (".ferryignore", "5"),
        ]);
        let rules = IgnoreRules::new("*.log\n", &[]).unwrap();
        let plan = run(&target, Basis::Fresh, &rules);
        assert_eq!(plan.kind, PlanKind::Fresh);
        assert_eq!(
            paths(&plan.uploads),
            ["css/img/a b#.png", "css/site.css", "index.html"]
        );
        assert_eq!(plan.mkdirs, ["css", "css/img"]);
        assert!(plan.deletes.is_empty() && plan.prunes.is_empty());
    }

    #[test]
    fn incremental_plan_uploads_changes_deletes_removals_and_prunes_emptied_directories() {
        let old = tree(&[
            ("index.html", "1"),
            ("old/deep/page.html", "2"),
            ("keep/a.txt", "3"),
            ("keep/b.txt", "4"),
        ]);
        let target = tree(&[
            ("index.html", "9"),
            ("keep/a.txt", "3"),
            ("new/dir/file.txt", "5"),
        ]);
        // keep/b.txt renamed to new/dir/file.txt: delete + add.
        let changes = [
            up("index.html"),
            del("keep/b.txt"),
            up("new/dir/file.txt"),
            del("old/deep/page.html"),
        ];
        let rules = IgnoreRules::default();
        let plan = run(
            &target,
            Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &changes,
            },
            &rules,
        );
        assert_eq!(plan.from.as_deref(), Some("o"));
        assert_eq!(paths(&plan.uploads), ["index.html", "new/dir/file.txt"]);
        assert_eq!(plan.mkdirs, ["new", "new/dir"]);
        assert_eq!(plan.deletes, ["keep/b.txt", "old/deep/page.html"]);
        assert_eq!(plan.prunes, ["old/deep", "old"], "keep/ still has a file");
        assert!(plan.clear_files.is_empty() && plan.clear_dirs.is_empty());
    }

    #[test]
    fn ignored_paths_are_neither_uploaded_nor_deleted() {
        let old = tree(&[("a.txt", "1"), ("secret.env", "2")]);
        let target = tree(&[("a.txt", "3")]);
        let changes = [up("a.txt"), del("secret.env")];
        let rules = IgnoreRules::new("", &["*.env".into()]).unwrap();
        let plan = run(
            &target,
            Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &changes,
            },
            &rules,
        );
        assert_eq!(paths(&plan.uploads), ["a.txt"]);
        assert!(plan.deletes.is_empty());
    }

    #[test]
    fn a_file_that_becomes_a_directory_is_cleared_first_and_the_reverse_too() {
        let old = tree(&[("page", "1"), ("assets/x.css", "2")]);
        let target = tree(&[("page/index.html", "3"), ("assets", "4")]);
        let changes = [
            del("page"),
            up("page/index.html"),
            del("assets/x.css"),
            up("assets"),
        ];
        let rules = IgnoreRules::default();
        let plan = run(
            &target,
            Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &changes,
            },
            &rules,
        );
        assert_eq!(plan.clear_files, ["assets/x.css", "page"]);
        assert_eq!(plan.clear_dirs, ["assets"]);
        assert_eq!(plan.mkdirs, ["page"]);
        assert!(plan.deletes.is_empty() && plan.prunes.is_empty());
    }

    #[test]
    fn full_comparison_deletes_what_the_server_has_extra_and_uploads_what_differs() {
        let target = tree(&[
            ("same.txt", "ab"),
            ("changed.txt", "cd"),
            ("new/n.txt", "e"),
        ]);
        let mut remote = RemoteTree::default();
        remote.files.insert("same.txt".into(), 2);
        remote.files.insert("changed.txt".into(), 2);
        remote.files.insert("stale/x.txt".into(), 1);
        remote.files.insert("uploads/user.jpg".into(), 1);
        remote.files.insert(".ferry-deploy.json".into(), 100);
        remote.dirs.extend(["stale".into(), "uploads".into()]);
        let rules = IgnoreRules::new("/uploads/\n", &[]).unwrap();
        let changed: BTreeSet<String> = ["changed.txt".to_owned()].into();
        let plan = run(
            &target,
            Basis::Listing {
                commit: Some("o"),
                remote: &remote,
                changed: Some(&changed),
            },
            &rules,
        );
        assert_eq!(plan.kind, PlanKind::FullComparison);
        assert_eq!(paths(&plan.uploads), ["changed.txt", "new/n.txt"]);
        assert_eq!(plan.deletes, ["stale/x.txt"]);
        assert_eq!(plan.prunes, ["stale"]);
        assert_eq!(plan.mkdirs, ["new"]);

        // Without the deployed commit, equal sizes prove nothing: everything is uploaded.
        let plan = run(
            &target,
            Basis::Listing {
                commit: None,
                remote: &remote,
                changed: None,
            },
            &rules,
        );
        assert_eq!(plan.uploads.len(), 3);
    }

    #[test]
    fn journal_skips_finished_work_and_settles_paths_an_unfinished_run_touched() {
        let old = tree(&[("a.txt", "1"), ("b.txt", "2"), ("c.txt", "3")]);
        let target = tree(&[("a.txt", "7"), ("b.txt", "8"), ("c.txt", "3")]);
        let changes = [up("a.txt"), up("b.txt")];
        let journal_text = concat!(
            r#"{"target":"x","from":"o"}"#,
            "\n",
            r#"{"op":"upload","path":"a.txt","blob":"7"}"#,
            "\n",
            // An earlier run for another commit changed c.txt and added d.txt.
            r#"{"op":"upload","path":"c.txt","blob":"5"}"#,
            "\n",
            r#"{"op":"upload","path":"d.txt","blob":"6"}"#,
            "\n",
        );
        let journal = JournalState::parse(journal_text, "x", Some("o"));
        let rules = IgnoreRules::default();
        let plan = plan(PlanInput {
            target_commit: "t",
            target_tree: &target,
            basis: Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &changes,
            },
            rules: &rules,
            journal: &journal,
            entry_points: &EntryPoints::default(),
            order: Order::Unordered,
        })
        .unwrap();
        assert_eq!(paths(&plan.uploads), ["b.txt", "c.txt"]);
        assert_eq!(plan.deletes, ["d.txt"]);
        assert_eq!(plan.already_done, 1);
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn names_with_line_breaks_or_dot_segments_are_refused() {
        let target = tree(&[("bad\nname", "1")]);
        let error = plan(PlanInput {
            target_commit: "t",
            target_tree: &target,
            basis: Basis::Fresh,
            rules: &IgnoreRules::default(),
            journal: &JournalState::default(),
            entry_points: &EntryPoints::default(),
            order: Order::Unordered,
        })
        .unwrap_err();
        assert!(matches!(error, PlanError::UnsendableName(_)));
        for bad in ["../escape", "a/./b", "a//b"] {
            let target = tree(&[(bad, "1")]);
            let error = plan(PlanInput {
                target_commit: "t",
                target_tree: &target,
                basis: Basis::Fresh,
                rules: &IgnoreRules::default(),
                journal: &JournalState::default(),
                entry_points: &EntryPoints::default(),
                order: Order::Unordered,
            })
            .unwrap_err();
            assert!(matches!(error, PlanError::UnsafePath(_)), "{bad}");
        }
    }

    #[test]
    fn symlinks_and_submodules_are_skipped_and_reported_never_deleted() {
        let mut target = tree(&[("index.html", "1"), ("lib/keep.txt", "2")]);
        target.push(TreeEntry {
            path: "current".into(),
            kind: EntryKind::Symlink,
            blob: "9".into(),
            size: 5,
        });
        target.push(TreeEntry {
            path: "vendor/theme".into(),
            kind: EntryKind::Submodule,
            blob: "8".into(),
            size: 0,
        });
        // The server has a file where the symlink is and files under the submodule.
        let remote = RemoteTree {
            files: [
                ("index.html".to_owned(), 1),
                ("current".to_owned(), 3),
                ("vendor/theme/style.css".to_owned(), 10),
            ]
            .into(),
            dirs: ["vendor".to_owned(), "vendor/theme".to_owned()].into(),
        };
        let plan = run(
            &target,
            Basis::Listing {
                commit: None,
                remote: &remote,
                changed: None,
            },
            &IgnoreRules::default(),
        );
        assert!(plan.deletes.is_empty(), "{:?}", plan.deletes);
        assert!(plan.prunes.is_empty(), "{:?}", plan.prunes);
        assert_eq!(
            plan.skipped
                .iter()
                .map(SkippedEntry::describe)
                .collect::<Vec<_>>(),
            ["symlink current", "submodule vendor/theme"]
        );
        assert!(plan.summary().contains("2 symlinks or submodules skipped"));

        // A file that became a symlink (diff-tree reports it as changed): not deleted either.
        let old = tree(&[("index.html", "1"), ("current", "3")]);
        let plan = run(
            &target,
            Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &[up("current"), up("lib/keep.txt")],
            },
            &IgnoreRules::default(),
        );
        assert!(plan.deletes.is_empty(), "{:?}", plan.deletes);
        assert_eq!(paths(&plan.uploads), ["lib/keep.txt"]);
    }

    #[test]
    fn a_delete_that_would_leave_the_root_is_refused() {
        let target = tree(&[("index.html", "1")]);
        let old = tree(&[("index.html", "1")]);
        let error = plan(PlanInput {
            target_commit: "t",
            target_tree: &target,
            basis: Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &[del("../victim.html")],
            },
            rules: &IgnoreRules::default(),
            journal: &JournalState::default(),
            entry_points: &EntryPoints::default(),
            order: Order::Unordered,
        })
        .unwrap_err();
        assert!(matches!(error, PlanError::UnsafePath(ref p) if p == "../victim.html"));
    }

    #[test]
    fn phased_uploads_bring_new_files_then_changed_ones_then_entry_points() {
        let old = tree(&[
            ("index.html", "1"),
            ("css/site.css", "2"),
            ("about.html", "3"),
            ("old.js", "4"),
        ]);
        let target = tree(&[
            ("index.html", "5"),
            ("css/site.css", "6"),
            ("about.html", "3"),
            ("css/new.css", "7"),
            ("blog.html", "8"),
        ]);
        let changes = [
            up("index.html"),
            up("css/site.css"),
            up("css/new.css"),
            up("blog.html"),
            del("old.js"),
        ];
        let plan = plan(PlanInput {
            target_commit: "t",
            target_tree: &target,
            basis: Basis::Ancestor {
                commit: "o",
                tree: &old,
                changes: &changes,
            },
            rules: &IgnoreRules::default(),
            journal: &JournalState::default(),
            entry_points: &EntryPoints::default(),
            order: Order::Phased,
        })
        .unwrap();
        let phases: Vec<(&str, UploadPhase)> = plan
            .uploads
            .iter()
            .map(|u| (u.path.as_str(), u.phase))
            .collect();
        assert_eq!(
            phases,
            [
                // A new page is new: nothing links to it before the changed pages go live.
                ("blog.html", UploadPhase::New),
                ("css/new.css", UploadPhase::New),
                ("css/site.css", UploadPhase::Changed),
                ("index.html", UploadPhase::EntryPoint),
            ]
        );
        assert_eq!(plan.deletes, ["old.js"]);
        assert!(
            plan.steps()
                .iter()
                .any(|s| s.ends_with("[changed entry points]"))
        );
    }
}
