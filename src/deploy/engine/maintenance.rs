//! A maintenance page for deploys in place (`--maintenance FILE[:TARGET]`): before anything is
//! uploaded, the page FILE of the commit being deployed replaces TARGET (default `index.html`,
//! relative to the deploy root) on the live site — the file it replaces is renamed aside beside
//! it — and the deploy leaves TARGET alone. At the end TARGET gets the commit's version; a
//! deploy that failed puts back the file it replaced. A record in the state directory says the
//! page is up from before it goes up until it is down again, so the next deploy to the target
//! takes down a page a killed deploy left up, whatever its own flags.
//!
//! Putting the page up is three steps: the page is uploaded to a temporary name, TARGET is
//! renamed aside, the page is renamed to TARGET (between the two renames TARGET is missing, for
//! as long as two FTP replies take).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::DeployError;
use super::connection::{TargetConnection, rename_over, temp_name};
use super::git::{GitCli, RepoSource};
use super::ignore_rules::TEMP_PREFIX;
use super::progress::Reporter;
use super::push::{DeployRequest, PushOutcome, ignore_rules, push_holding, refuse_backwards};
use crate::client::{ClientError, RemoteKind, StoreMode};

/// Where the page goes when `--maintenance` names no TARGET.
pub const DEFAULT_TARGET: &str = "index.html";

/// The replaced file's name while the page is up, beside it (a temporary name: listings of the
/// target leave it out).
fn aside_name(path: &str) -> String {
    let temp = temp_name(path);
    match temp.rsplit_once(TEMP_PREFIX) {
        Some((dir, name)) => format!("{dir}{TEMP_PREFIX}maintenance-aside.{name}"),
        None => temp,
    }
}

/// `--maintenance FILE[:TARGET]`: the page (a path in the deployed commit) and where visitors
/// meet it during the deploy (a path relative to the deploy root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePage {
    pub file: String,
    pub target: String,
}

impl std::str::FromStr for MaintenancePage {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (file, target) = match text.split_once(':') {
            Some((file, target)) => (file, target),
            None => (text, DEFAULT_TARGET),
        };
        let check = |what: &str, path: &str| -> Result<String, String> {
            let path = path.trim().trim_start_matches('/');
            let fine = !path.is_empty()
                && !path.chars().any(char::is_control)
                && path.split('/').all(|part| !matches!(part, "" | "." | ".."));
            if fine {
                Ok(path.to_owned())
            } else {
                Err(format!(
                    "the maintenance page's {what} {path:?} is not a relative path (write \
                     FILE[:TARGET], as in maintenance.html or maintenance.html:index.php)"
                ))
            }
        };
        Ok(Self {
            file: check("file", file)?,
            target: check("target", target)?,
        })
    }
}

impl std::fmt::Display for MaintenancePage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.target)
    }
}

/// The page is up on a target: from before it goes up until it is down again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    target: String,
    /// Where the page is, relative to the deploy root.
    path: String,
    /// A file was there before (it waits under the aside name).
    had_file: bool,
}

impl Record {
    fn file(request: &DeployRequest) -> PathBuf {
        request.journal_path().with_extension("maintenance.json")
    }

    fn load(request: &DeployRequest) -> Result<Option<Self>, DeployError> {
        let unreadable =
            |e: String| DeployError::Transfer(format!("cannot read the maintenance record: {e}"));
        match std::fs::read_to_string(Self::file(request)) {
            Ok(text) => {
                let record: Self =
                    serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
                Ok((record.target == request.target.display_url()).then_some(record))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unreadable(e.to_string())),
        }
    }

    fn save(&self, request: &DeployRequest) -> Result<(), DeployError> {
        let path = Self::file(request);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                crate::private_files::create_private_dir_all(dir)?;
            }
            crate::private_files::create_private_file(&path)?;
            std::fs::write(&path, serde_json::to_vec(self)?)
        };
        write()
            .map_err(|e| DeployError::Transfer(format!("cannot write the maintenance record: {e}")))
    }

    fn remove(request: &DeployRequest) {
        match std::fs::remove_file(Self::file(request)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn!(error = %e, "cannot remove the maintenance record");
            }
            _ => {}
        }
    }
}

/// What TARGET holds once the page is down.
enum Settled {
    /// The deployed commit's file.
    Commit(Vec<u8>),
    /// Nothing: the deploy removed the file.
    Removed,
    /// What was there before the page went up.
    Before,
}

/// Deploys `request` in place with `page` up meanwhile (when given), and takes down a page an
/// earlier, killed deploy left up. Without either it is [`super::push::push`].
pub(crate) async fn push_with_page(
    request: &DeployRequest,
    page: Option<&MaintenancePage>,
    reporter: Arc<dyn Reporter>,
) -> Result<PushOutcome, DeployError> {
    let left_up = Record::load(request)?;
    if left_up.is_none() && page.is_none() {
        return push_holding(request, reporter, None).await;
    }
    let repo = GitCli::new(&request.repo_dir);
    let commit = request.resolve(&repo)?;
    let tree = repo.tree(&commit)?;
    let held = match (&left_up, page) {
        (Some(record), _) => {
            info!(
                page = record.path,
                "a maintenance page an interrupted deploy put up is still up"
            );
            record.path.clone()
        }
        (None, Some(_)) if !request.init && nothing_to_do(request, &repo, &commit).await? => {
            // Nothing to deploy: no page to show.
            return push_holding(request, reporter, None).await;
        }
        (None, Some(page)) => {
            let Some(entry) = tree.iter().find(|e| e.path == page.file) else {
                return Err(DeployError::Usage(format!(
                    "the maintenance page {} is not a file of commit {commit}; commit it, or \
                     name a file the commit has with --maintenance FILE[:TARGET]",
                    page.file
                )));
            };
            let body = repo.read_blob(&entry.blob)?;
            reporter.phase("maintenance page up");
            put_up(request, &page.target, body).await?;
            page.target.clone()
        }
        (None, None) => unreachable!("returned above"),
    };
    let result = push_holding(request, Arc::clone(&reporter), Some(&held)).await;
    reporter.phase("maintenance page down");
    let settled = match &result {
        Ok(outcome) => {
            let rules = ignore_rules(&repo, &tree, &request.excludes)?;
            let before_had = |path: &str| {
                outcome
                    .plan
                    .from
                    .as_deref()
                    .and_then(|from| repo.tree(from).ok())
                    .is_some_and(|tree| tree.iter().any(|e| e.path == path))
            };
            match tree.iter().find(|e| e.path == held) {
                _ if rules.is_ignored(&held) => Settled::Before,
                Some(entry) => Settled::Commit(repo.read_blob(&entry.blob)?),
                None if before_had(&held) => Settled::Removed,
                None => Settled::Before,
            }
        }
        Err(_) => Settled::Before,
    };
    let down = take_down(request, settled).await;
    match (result, down) {
        (Err(error), down) => {
            if let Err(down) = down {
                warn!(%down, "cannot take the maintenance page down; the next deploy will");
            }
            Err(error)
        }
        (Ok(_), Err(down)) => Err(down),
        (Ok(outcome), Ok(())) => Ok(outcome),
    }
}

/// Whether the target's marker already names `commit`.
/// Whether the target holds `commit` already; a deploy that would take it backwards is refused
/// here, before any page goes up.
async fn nothing_to_do(
    request: &DeployRequest,
    repo: &GitCli,
    commit: &str,
) -> Result<bool, DeployError> {
    let mut conn = TargetConnection::open(request.client.clone(), &request.target.path).await?;
    let marker = conn.read_marker(&request.retry).await;
    conn.quit().await;
    let deployed = marker?.map(|marker| marker.commit);
    refuse_backwards(request, repo, deployed.as_deref(), commit)?;
    Ok(deployed.as_deref() == Some(commit))
}

/// Puts `body` up at `path` (relative to the deploy root), the file there moved aside.
async fn put_up(request: &DeployRequest, path: &str, body: Vec<u8>) -> Result<(), DeployError> {
    let mut conn = TargetConnection::open(request.client.clone(), &request.target.path).await?;
    let result = async {
        conn.create_root().await?;
        let live = conn.path(path);
        let fail = |e| DeployError::from_client("putting the maintenance page up", e);
        if let Some((parent, _)) = live.rsplit_once('/')
            && !parent.is_empty()
        {
            conn.client.mkdir_all(parent).await.map_err(fail)?;
        }
        let had_file = conn.client.kind_of(&live).await.map_err(fail)? == Some(RemoteKind::File);
        Record {
            target: request.target.display_url(),
            path: path.to_owned(),
            had_file,
        }
        .save(request)?;
        let temp = temp_name(&live);
        let sent = conn
            .client
            .store(&temp, &mut body.as_slice(), StoreMode::Replace)
            .await
            .map_err(fail)?;
        if sent != body.len() as u64 {
            return Err(DeployError::Transfer(
                "the maintenance page's upload was cut short".to_owned(),
            ));
        }
        if had_file {
            rename_over(&mut conn.client, &live, &aside_name(&live))
                .await
                .map_err(fail)?;
        }
        rename_over(&mut conn.client, &temp, &live)
            .await
            .map_err(fail)?;
        info!(page = live, "the maintenance page is up");
        Ok(())
    }
    .await;
    conn.quit().await;
    if result.is_err() {
        // Whatever went up comes down; what was moved aside comes back.
        if let Err(error) = take_down(request, Settled::Before).await {
            warn!(%error, "cannot undo the maintenance page");
        }
    }
    result
}

/// Takes the page a record says is up down, leaving `settled` at its path; nothing when no
/// record says so.
async fn take_down(request: &DeployRequest, settled: Settled) -> Result<(), DeployError> {
    let Some(record) = Record::load(request)? else {
        return Ok(());
    };
    let mut conn = TargetConnection::open(request.client.clone(), &request.target.path).await?;
    let live = conn.path(&record.path);
    let aside = aside_name(&live);
    let fail = |e| DeployError::from_client("taking the maintenance page down", e);
    let gone = |result: Result<(), ClientError>| match result {
        // Never made, or already removed by a run that was cut short.
        Err(ClientError::Refused { reply, .. }) if reply.code.get() >= 500 => Ok(()),
        other => other,
    };
    let result = async {
        match settled {
            Settled::Commit(body) => {
                let temp = temp_name(&live);
                conn.client
                    .store(&temp, &mut body.as_slice(), StoreMode::Replace)
                    .await
                    .map_err(fail)?;
                rename_over(&mut conn.client, &temp, &live)
                    .await
                    .map_err(fail)?;
                gone(conn.client.delete(&aside).await).map_err(fail)?;
            }
            Settled::Removed => {
                gone(conn.client.delete(&live).await).map_err(fail)?;
                gone(conn.client.delete(&aside).await).map_err(fail)?;
            }
            Settled::Before => {
                let aside_there =
                    conn.client.kind_of(&aside).await.map_err(fail)? == Some(RemoteKind::File);
                if aside_there {
                    rename_over(&mut conn.client, &aside, &live)
                        .await
                        .map_err(fail)?;
                } else if !record.had_file {
                    gone(conn.client.delete(&live).await).map_err(fail)?;
                }
                // Else the deploy stopped before the file went aside: it is still in place.
            }
        }
        gone(conn.client.delete(&temp_name(&live)).await).map_err(fail)?;
        Ok::<_, DeployError>(())
    }
    .await;
    conn.quit().await;
    result?;
    Record::remove(request);
    info!(page = live, "the maintenance page is down");
    Ok(())
}

/// Before a swapped deploy: a page an in-place deploy left up on the live copy comes down, the
/// file it replaced put back (the swap then replaces the whole copy).
pub(crate) async fn take_down_left_up(request: &DeployRequest) -> Result<(), DeployError> {
    take_down(request, Settled::Before).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_a_file_and_a_target_which_defaults_to_the_index() {
        let page: MaintenancePage = "maintenance.html".parse().unwrap();
        assert_eq!(
            (page.file.as_str(), page.target.as_str()),
            ("maintenance.html", "index.html")
        );
        let page: MaintenancePage = "ops/down.html:shop/index.php".parse().unwrap();
        assert_eq!(
            (page.file.as_str(), page.target.as_str()),
            ("ops/down.html", "shop/index.php")
        );
        assert_eq!(page.to_string(), "ops/down.html:shop/index.php");
        for bad in [
            "",
            ":index.html",
            "a/../b.html",
            "down.html:",
            "down.html:a//b",
        ] {
            let error = bad.parse::<MaintenancePage>().unwrap_err();
            assert!(error.contains("FILE[:TARGET]"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_replaced_file_waits_under_a_temporary_name_beside_it() {
        assert_eq!(
            aside_name("/site/index.html"),
            "/site/.ferry-tmp.maintenance-aside.index.html"
        );
        assert!(
            super::super::ignore_rules::IgnoreRules::new("", &[])
                .unwrap()
                .is_ignored(".ferry-tmp.maintenance-aside.index.html")
        );
    }
}
