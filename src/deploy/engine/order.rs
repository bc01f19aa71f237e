//! The order a deploy's uploads go out in, so that a visitor never meets a page whose assets are
//! not there yet: first the files nothing references yet (new files), then the changed files that
//! are not entry points (stylesheets, scripts, images), then the changed entry points (the pages
//! visitors open: `*.html`, `*.php`, `index.*`, `.htaccess`, …); deletes come after all of them.
//! Each file is already replaced atomically; the phases make the site as a whole move forward in
//! that order too. Pure: names in, phases out.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The entry points when nothing else is said: what visitors open directly.
pub const DEFAULT_ENTRY_POINTS: &[&str] = &[
    "*.html",
    "*.htm",
    "*.php",
    "*.shtml",
    "index.*",
    ".htaccess",
];

/// Which phase an upload belongs to, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UploadPhase {
    /// Files the target does not hold yet: nothing references them before the pages change.
    New,
    /// Changed files that are not entry points.
    Changed,
    /// Changed entry points, last: by then everything they reference is in place.
    EntryPoint,
}

impl UploadPhase {
    pub const ALL: [UploadPhase; 3] = [Self::New, Self::Changed, Self::EntryPoint];

    /// How the log and the progress name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::New => "new files",
            Self::Changed => "changed files",
            Self::EntryPoint => "changed entry points",
        }
    }
}

/// Whether uploads go out in phases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Phases, one after the other (the default).
    #[default]
    Phased,
    /// Every upload in one phase, as they come (faster by the waits between phases).
    Unordered,
}

/// A bad entry-point pattern.
#[derive(Debug, thiserror::Error)]
#[error("bad entry-point pattern {pattern:?}: {detail}")]
pub struct EntryPatternError {
    pub pattern: String,
    pub detail: String,
}

/// The files that are entry points, by glob: a pattern without `/` matches a file's name in any
/// directory, one with `/` matches its path from the deploy root.
#[derive(Debug, Clone)]
pub struct EntryPoints {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Default for EntryPoints {
    fn default() -> Self {
        Self::new(DEFAULT_ENTRY_POINTS).expect("the default patterns are valid")
    }
}

impl EntryPoints {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, EntryPatternError> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.as_ref().trim();
            let glob = GlobBuilder::new(pattern.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| EntryPatternError {
                    pattern: pattern.to_owned(),
                    detail: e.kind().to_string(),
                })?;
            if pattern.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |set: GlobSetBuilder| {
            set.build().map_err(|e| EntryPatternError {
                pattern: patterns
                    .iter()
                    .map(|p| p.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
                detail: e.to_string(),
            })
        };
        Ok(Self {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
        })
    }

    /// Whether `path` (relative to the deploy root) is an entry point.
    pub fn matches(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.by_name.is_match(name) || self.by_path.is_match(path)
    }

    /// The phase of an upload to `path`: `new` when the target does not hold it yet.
    pub fn phase(&self, order: Order, path: &str, new: bool) -> UploadPhase {
        match order {
            Order::Unordered => UploadPhase::Changed,
            Order::Phased if new => UploadPhase::New,
            Order::Phased if self.matches(path) => UploadPhase::EntryPoint,
            Order::Phased => UploadPhase::Changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_entry_points_are_the_pages_visitors_open() {
        let entries = EntryPoints::default();
        for path in [
            "index.html",
            "blog/post.htm",
            "shop/cart.php",
            "ssi/page.shtml",
            "docs/index.txt",
            ".htaccess",
            "deep/.htaccess",
        ] {
            assert!(entries.matches(path), "{path}");
        }
        for path in [
            "css/site.css",
            "js/app.js",
            "img/logo.png",
            "html/readme.md",
        ] {
            assert!(!entries.matches(path), "{path}");
        }
    }

    #[test]
    fn patterns_with_a_slash_match_the_path_and_phases_follow_the_order() {
        let entries = EntryPoints::new(&["templates/*.tpl", "*.md"]).unwrap();
        assert!(entries.matches("templates/home.tpl"));
        assert!(!entries.matches("other/templates/home.tpl"));
        assert!(entries.matches("docs/guide.md"));
        assert!(!entries.matches("index.html"), "the defaults are replaced");
        assert_eq!(entries.phase(Order::Phased, "a.md", true), UploadPhase::New);
        assert_eq!(
            entries.phase(Order::Phased, "a.md", false),
            UploadPhase::EntryPoint
        );
        assert_eq!(
            entries.phase(Order::Phased, "a.css", false),
            UploadPhase::Changed
        );
        assert_eq!(
            entries.phase(Order::Unordered, "a.md", false),
            UploadPhase::Changed
        );
        assert!(EntryPoints::new(&["[unclosed"]).is_err());
    }
}
