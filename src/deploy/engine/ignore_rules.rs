//! Which files a deploy leaves alone: `.ferryignore` (gitignore syntax, read from the deployed
//! commit) plus `--exclude` patterns, plus ferry's own bookkeeping names on the target.
//!
//! An ignored path is never uploaded and never deleted: the server's copy, if any, is not ours.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::deploy_config::DEPLOY_CONFIG_FILE;
use super::marker::MARKER_NAME;

/// The ignore file at the repository root.
pub const IGNORE_FILE: &str = ".ferryignore";
/// The prefix of the temporary names uploads go to before they are renamed into place.
pub const TEMP_PREFIX: &str = ".ferry-tmp.";

/// A bad ignore pattern.
#[derive(Debug, thiserror::Error)]
#[error("bad ignore pattern {pattern:?} ({origin}): {detail}")]
pub struct PatternError {
    pub pattern: String,
    pub origin: &'static str,
    pub detail: String,
}

/// Compiled ignore rules.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    matcher: Gitignore,
}

impl Default for IgnoreRules {
    fn default() -> Self {
        Self::new("", &[]).expect("no patterns cannot fail")
    }
}

impl IgnoreRules {
    /// Rules from the text of a `.ferryignore` and from `--exclude` patterns (both gitignore
    /// syntax; later patterns win, so an `--exclude` can override the file and `!` re-includes).
    pub fn new(ferryignore: &str, excludes: &[String]) -> Result<Self, PatternError> {
        let mut builder = GitignoreBuilder::new("");
        for line in ferryignore.lines() {
            builder.add_line(None, line).map_err(|e| PatternError {
                pattern: line.to_owned(),
                origin: IGNORE_FILE,
                detail: e.to_string(),
            })?;
        }
        for pattern in excludes {
            builder.add_line(None, pattern).map_err(|e| PatternError {
                pattern: pattern.clone(),
                origin: "--exclude",
                detail: e.to_string(),
            })?;
        }
        let matcher = builder.build().map_err(|e| PatternError {
            pattern: String::new(),
            origin: "ignore rules",
            detail: e.to_string(),
        })?;
        Ok(Self { matcher })
    }

    /// True when the file at `path` (slash-separated, relative to the deploy root) is ignored,
    /// by a pattern on it or on any of its directories, or because the name is ferry's own.
    pub fn is_ignored(&self, path: &str) -> bool {
        if is_reserved(path) {
            return true;
        }
        self.matcher
            .matched_path_or_any_parents(path, false)
            .is_ignore()
    }

    /// True when the directory at `path` is ignored as a whole.
    pub fn is_ignored_dir(&self, path: &str) -> bool {
        self.matcher
            .matched_path_or_any_parents(path, true)
            .is_ignore()
    }
}

/// Names the deploy itself owns: the ignore file and the deploy settings (configuration, not
/// content), the marker at the root, and temporary upload names anywhere.
pub fn is_reserved(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path == IGNORE_FILE
        || path == DEPLOY_CONFIG_FILE
        || path == MARKER_NAME
        || name.starts_with(TEMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferryignore_patterns_follow_gitignore_syntax() {
        let rules = IgnoreRules::new(
            "# comment\n*.log\n/build/\nsecret.txt\n!keep.log\ndocs/**/draft-*\n",
            &[],
        )
        .unwrap();
        assert!(rules.is_ignored("error.log"));
        assert!(rules.is_ignored("deep/dir/error.log"));
        assert!(!rules.is_ignored("keep.log"));
        assert!(rules.is_ignored("build/app.js"));
        assert!(
            !rules.is_ignored("src/build/app.js"),
            "anchored to the root"
        );
        assert!(rules.is_ignored("a/secret.txt"));
        assert!(rules.is_ignored("docs/x/y/draft-1.md"));
        assert!(!rules.is_ignored("docs/x/y/final.md"));
        assert!(!rules.is_ignored("index.html"));
    }

    #[test]
    fn excludes_add_to_the_file_and_ferrys_own_names_are_always_ignored() {
        let rules = IgnoreRules::new("*.tmp\n", &["vendor/".into(), "*.map".into()]).unwrap();
        assert!(rules.is_ignored("vendor/lib/x.js"));
        assert!(rules.is_ignored("app.js.map"));
        assert!(rules.is_ignored("x.tmp"));
        assert!(rules.is_ignored(".ferryignore"));
        assert!(rules.is_ignored(".ferry-deploy.json"));
        assert!(rules.is_ignored("a/.ferry-tmp.index.html"));
        assert!(
            !rules.is_ignored("a/.ferry-deploy.json"),
            "the marker lives at the root"
        );
        assert!(rules.is_ignored_dir("vendor"));
    }
}
