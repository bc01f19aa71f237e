//! Virtual paths: what a client names, normalised so that it can never leave the user's home.
//!
//! A [`VirtualPath`] is absolute (`/` is the home), has no empty, `.` or `..` components and no NUL
//! byte. `..` at the root stays at the root, as on a Unix file system, so `CWD ../../etc` from `/`
//! lands on `/etc` *inside the home*. Backends map it below their own root and never see `..`.

use std::fmt;

/// Why a path argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("file names cannot contain a NUL byte")]
    Nul,
}

/// A normalised absolute path below the user's home.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The home directory itself.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Resolves `arg` against `self` (the working directory): absolute when it starts with `/`.
    pub fn join(&self, arg: &str) -> Result<Self, PathError> {
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        let mut path = String::with_capacity(arg.len() + self.0.len() + 1);
        for part in &parts {
            path.push('/');
            path.push_str(part);
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(Self(path))
    }

    /// Parses an absolute path, normalising it.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Self::root().join(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/`: `""` for the root. Backends join this below their root.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|part| !part.is_empty())
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The directory that holds this path; `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            Self::root()
        } else {
            Self(self.0[..cut].to_owned())
        })
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Quotes a path for a `257` reply: wrapped in `"`, with every `"` inside doubled (RFC 959
/// Appendix II).
pub fn quote_257(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    out.push('"');
    for c in path.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Reads the path back out of a `257` reply text (the client's side of [`quote_257`]).
pub fn unquote_257(text: &str) -> Option<String> {
    let rest = text.strip_prefix('"').or_else(|| {
        let start = text.find('"')?;
        Some(&text[start + 1..])
    })?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(cwd: &str, arg: &str) -> String {
        VirtualPath::parse(cwd).unwrap().join(arg).unwrap().0
    }

    #[test]
    fn relative_and_absolute_arguments() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b/c"), "/a/b/c");
        assert_eq!(join("/a/b", "/x"), "/x");
        assert_eq!(join("/a/b", ".."), "/a");
        assert_eq!(join("/a/b", "./c//d/"), "/a/b/c/d");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        assert_eq!(join("/", ".."), "/");
        assert_eq!(join("/a", "../../../etc/passwd"), "/etc/passwd");
        assert_eq!(join("/", "/../.."), "/");
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert_eq!(VirtualPath::root().join("a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn names_with_spaces_and_other_scripts_are_kept() {
        assert_eq!(
            join("/", " leading and trailing "),
            "/ leading and trailing "
        );
        assert_eq!(join("/Документы", "日本語.txt"), "/Документы/日本語.txt");
    }

    #[test]
    fn parent_and_file_name() {
        let p = VirtualPath::parse("/a/b/c").unwrap();
        assert_eq!(p.file_name(), Some("c"));
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(
            VirtualPath::parse("/a").unwrap().parent().unwrap().as_str(),
            "/"
        );
        assert_eq!(VirtualPath::root().parent(), None);
        assert_eq!(VirtualPath::root().file_name(), None);
        assert_eq!(VirtualPath::root().relative(), "");
    }

    #[test]
    fn starts_with_respects_component_boundaries() {
        let ab = VirtualPath::parse("/a/b").unwrap();
        assert!(ab.starts_with(&VirtualPath::parse("/a").unwrap()));
        assert!(ab.starts_with(&VirtualPath::root()));
        assert!(
            !VirtualPath::parse("/ab")
                .unwrap()
                .starts_with(&VirtualPath::parse("/a").unwrap())
        );
    }

    #[test]
    fn quotes_double_quotes_in_257_replies() {
        assert_eq!(quote_257("/a\"b"), "\"/a\"\"b\"");
        assert_eq!(unquote_257("\"/a\"\"b\" created").as_deref(), Some("/a\"b"));
        assert_eq!(unquote_257("PWD is \"/x\"").as_deref(), Some("/x"));
    }

    proptest! {
        #[test]
        fn joined_paths_are_always_normalised(cwd in "(/[a-z.]{0,3}){0,4}", arg in "[a-z./]{0,20}") {
            let path = VirtualPath::parse(&cwd).unwrap().join(&arg).unwrap();
            let s = path.as_str();
            prop_assert!(s.starts_with('/'));
            prop_assert!(s == "/" || !s.ends_with('/'));
            for part in s[1..].split('/') {
                prop_assert!(s == "/" || (!part.is_empty() && part != "." && part != ".."));
            }
        }

        #[test]
        fn quote_257_round_trips(name in "[ -~]{0,30}") {
            prop_assert_eq!(unquote_257(&quote_257(&name)), Some(name));
        }
    }
}
