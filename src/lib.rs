//! ferry: an FTP/FTPS server, an FTP/FTPS client, and a git-to-FTP deploy service.
//!
//! The module map, the layering rules and the reasons behind them are in the repository's
//! `ARCHITECTURE.md`; in short, [`protocol`] is pure and imports nothing from the rest of the
//! crate, [`server`] is the only code that awaits the network for the server, [`storage`] and
//! [`auth`] sit behind traits, the [`deploy`] engine knows no database, HTTP or terminal, and
//! [`cli`] sits on top of everything.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod deploy;
pub mod private_files;
pub mod protocol;
pub mod server;
pub mod sqlite;
pub mod storage;
pub mod systemd;
pub mod web;

// Unit tests count heap allocations inside `assert_no_alloc` blocks (the allocator only counts;
// outside those blocks it is the system allocator), to keep the per-command path allocation-free.
#[cfg(test)]
#[global_allocator]
static ALLOCATIONS: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

/// The layering rules of `ARCHITECTURE.md`, checked on the source: what each part of the crate
/// may import (`crate::…` paths outside comments and test modules).
#[cfg(test)]
mod architecture_tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Each part and the parts it may import; `cli` may import anything, nothing imports it.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("protocol", &[]),
        ("private_files", &[]),
        ("systemd", &[]),
        ("sqlite", &["private_files"]),
        ("storage", &["protocol"]),
        ("client", &["protocol"]),
        ("auth", &["protocol", "sqlite", "private_files"]),
        ("server", &["protocol", "storage", "auth"]),
        ("config", &["protocol", "storage", "auth", "server"]),
        ("deploy", &["deploy::engine"]),
        ("deploy::engine", &["protocol", "client", "private_files"]),
        (
            "deploy::service",
            &[
                "protocol",
                "client",
                "auth",
                "sqlite",
                "private_files",
                "deploy",
                "deploy::engine",
            ],
        ),
        ("web", &["protocol", "auth", "deploy", "deploy::service"]),
    ];

    fn part_of(relative: &Path) -> String {
        let parts: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|c| c != "mod")
            .collect();
        match parts.as_slice() {
            [deploy, sub, ..] if deploy == "deploy" => format!("deploy::{sub}"),
            [first, ..] => first.clone(),
            [] => String::new(),
        }
    }

    fn imports(source: &str) -> BTreeSet<String> {
        let code = source
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default();
        let mut found = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for piece in line.split("crate::").skip(1) {
                let mut names = piece
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::");
                let first = names.next().unwrap_or_default();
                let second = names.next().unwrap_or_default();
                let target = match (first, second) {
                    ("deploy", "engine" | "service") => format!("deploy::{second}"),
                    (first, _) => first.to_owned(),
                };
                if !target.is_empty() && target != "outln" {
                    found.insert(target);
                }
            }
        }
        found
    }

    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn every_import_follows_the_layering_rules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut broken = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let name = relative.file_name().unwrap().to_string_lossy();
            if matches!(relative.to_str(), Some("lib.rs" | "main.rs"))
                || name == "tests.rs"
                || name.starts_with("test_")
                || relative.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let part = part_of(relative);
            if part == "cli" {
                continue;
            }
            let Some(may) = allowed.get(part.as_str()) else {
                broken.push(format!(
                    "{}: {part} is not in the layering rules",
                    relative.display()
                ));
                continue;
            };
            let source = std::fs::read_to_string(&file).unwrap();
            for target in imports(&source) {
                if target != part && !may.contains(&target.as_str()) {
                    broken.push(format!("{}: {part} imports {target}", relative.display()));
                }
            }
        }
        assert!(
            broken.is_empty(),
            "upward or sideways imports:\n{}",
            broken.join("\n")
        );
    }
}
