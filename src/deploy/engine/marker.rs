//! `.ferry-deploy.json`, the file on the target that says which commit is deployed there (like
//! git-ftp's `.git-ftp.log`). It is written last, so it only names a commit once every file of that
//! commit is in place.

use serde::{Deserialize, Serialize};

use crate::protocol::time::UtcDateTime;

/// The marker's name, at the root of the deploy target.
pub const MARKER_NAME: &str = ".ferry-deploy.json";
/// The largest marker read: ferry writes a few hundred bytes. Whoever can write to the target
/// could put a huge file there, which must not cost the deploy service its memory.
pub const MAX_MARKER_BYTES: u64 = 16 * 1024;

/// The marker's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerFile {
    /// The full id of the deployed commit.
    pub commit: String,
    /// When it was written, RFC 3339 UTC (`2026-11-23T12:00:00Z`).
    pub time: String,
    /// Who deployed: `user@host` of the machine that ran ferry.
    pub who: String,
    /// Which ferry wrote it.
    #[serde(default)]
    pub tool: String,
}

/// A marker that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the deploy marker {MARKER_NAME} on the target is not valid ({0}); remove it, or adopt the site with `ferry deploy catchup`"
)]
pub struct MarkerError(String);

impl MarkerFile {
    /// A marker for `commit`, deployed now by `who`.
    pub fn new(commit: impl Into<String>, unix_time: i64, who: impl Into<String>) -> Self {
        Self {
            commit: commit.into(),
            time: rfc3339(UtcDateTime::from_unix(unix_time)),
            who: who.into(),
            tool: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("a marker always serialises");
        json.push(b'\n');
        json
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, MarkerError> {
        let marker: Self = serde_json::from_slice(bytes).map_err(|e| MarkerError(e.to_string()))?;
        let hex = marker.commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !(marker.commit.len() == 40 || marker.commit.len() == 64) {
            return Err(MarkerError(format!(
                "{:?} is not a full commit id",
                marker.commit
            )));
        }
        Ok(marker)
    }
}

/// `user@host` of this machine, from the environment (best effort, never fails).
pub fn current_deployer() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}")
}

fn rfc3339(t: UtcDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_through_json() {
        let marker = MarkerFile::new("a".repeat(40), 1_700_000_000, "ci@build");
        assert_eq!(marker.time, "2023-11-14T22:13:20Z");
        let json = marker.to_json();
        assert_eq!(MarkerFile::from_json(&json).unwrap(), marker);
    }

    #[test]
    fn marker_with_a_short_or_bad_commit_is_refused() {
        let bad = br#"{"commit":"abc","time":"x","who":"y"}"#;
        assert!(MarkerFile::from_json(bad).is_err());
        assert!(MarkerFile::from_json(b"not json").is_err());
        let other_tool = format!(r#"{{"commit":"{}","time":"t","who":"w"}}"#, "b".repeat(40));
        assert!(MarkerFile::from_json(other_tool.as_bytes()).is_ok());
    }
}
