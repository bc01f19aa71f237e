//! Blue/green deploys over plain FTP: two sibling copies of the site — the live one at the
//! target's path (`www`) and a standby one beside it (`.www.ferry-b`), each with its own marker.
//! A deploy brings the standby copy up to the new commit (only the diff from the commit that copy
//! holds, so usually two deploys' worth of changes) while visitors keep reading the live one
//! untouched, then swaps the two names with three renames: the live path switches from one whole
//! commit to the other in one step. Going back to the commit before is a swap back, with nothing
//! to upload: the standby copy still holds it.
//!
//! The swap: `www` → `.www.ferry-swap`, `.www.ferry-b` → `www`, `.www.ferry-swap` → `.www.ferry-b`.
//! Between the first two renames no `www` exists; that gap is measured and logged. A swap cut
//! short (a killed process, a dropped connection) is finished by the next deploy before it starts,
//! from which of the three names exist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::DeployError;
use super::connection::TargetConnection;
use super::marker::MarkerFile;
use super::order::Order;
use super::progress::{Progress, Reporter};
use super::push::{DeployRequest, PushOutcome, push};
use crate::client::{ClientConfig, ClientError, RemoteKind};

/// The three names of a swapped site, relative to the login directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapNames {
    /// Where visitors read: the target's path.
    pub live: String,
    /// The other copy, beside it.
    pub standby: String,
    /// The live copy's name for the moment of the swap.
    pub aside: String,
}

impl SwapNames {
    /// The names for a deploy root at `path` (relative to the login directory, without slashes
    /// at either end); the login directory itself has no sibling to swap with.
    pub fn for_root(path: &str) -> Result<Self, DeployError> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Err(DeployError::Usage(
                "--swap needs a deploy directory below the login directory (as in \
                 ftp://USER@HOST/www): the login directory itself cannot be renamed"
                    .to_owned(),
            ));
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (format!("{parent}/"), name),
            None => (String::new(), path),
        };
        Ok(Self {
            live: path.to_owned(),
            standby: format!("{parent}.{name}.ferry-b"),
            aside: format!("{parent}.{name}.ferry-swap"),
        })
    }
}

/// What a swapped deploy did.
#[derive(Debug)]
pub struct SwapOutcome {
    /// The standby copy's deploy (nothing uploaded when it already held the commit: a rollback).
    pub standby: PushOutcome,
    /// How long no copy was at the live path, when the names were swapped.
    pub gap: Option<Duration>,
    /// The live copy was already at the commit: nothing was swapped.
    pub already_live: bool,
}

/// Deploys `request`'s commit by bringing the standby copy up to it and swapping it live.
pub async fn push_swapped(
    request: &DeployRequest,
    reporter: Arc<dyn Reporter>,
) -> Result<SwapOutcome, DeployError> {
    let names = SwapNames::for_root(&request.target.path)?;
    let mut conn = TargetConnection::open(request.client.clone(), "").await?;
    finish_interrupted_swap(&mut conn, &names, reporter.as_ref()).await?;
    check_renames(&mut conn.client, &names).await?;
    super::maintenance::take_down_left_up(request).await?;
    let live_marker = marker_of(&request.client, &names.live, request).await?;

    let mut standby = request.clone();
    standby.target.path = names.standby.clone();
    // Nobody reads the standby copy: no phases to wait for.
    standby.order = Some(Order::Unordered);
    // "Never backwards" is about what visitors see: the live copy's commit.
    standby.forward_only = false;
    standby.never_behind = match (&request.never_behind, &live_marker) {
        (Some(commit), _) => Some(commit.clone()),
        (None, Some(live)) if request.forward_only => Some(live.commit.clone()),
        (None, _) => None,
    };
    let standby_reporter: Arc<dyn Reporter> = Arc::new(StandbyReporter(Arc::clone(&reporter)));
    let outcome = push(&standby, standby_reporter).await?;
    if live_marker
        .as_ref()
        .is_some_and(|live| live.commit == outcome.plan.to)
    {
        info!(
            commit = outcome.plan.to,
            "the live copy already holds the commit"
        );
        conn.quit().await;
        return Ok(SwapOutcome {
            standby: outcome,
            gap: None,
            already_live: true,
        });
    }
    reporter.phase("swapping copies");
    let gap = swap(&mut conn.client, &names).await;
    conn.quit().await;
    let gap = gap?;
    info!(
        live = names.live,
        commit = outcome.plan.to,
        gap_ms = gap.as_secs_f64() * 1000.0,
        "swapped the deployed copy live"
    );
    Ok(SwapOutcome {
        standby: outcome,
        gap: Some(gap),
        already_live: false,
    })
}

/// Tells the caller's reporter about the standby copy's deploy, its phases named as such.
struct StandbyReporter(Arc<dyn Reporter>);

impl Reporter for StandbyReporter {
    fn started(&self, progress: &Arc<Progress>) {
        self.0.started(progress);
    }

    fn file_done(&self, what: &str, path: &str, size: Option<u64>) {
        self.0.file_done(what, path, size);
    }

    fn phase(&self, phase: &str) {
        self.0.phase(&format!("standby copy: {phase}"));
    }
}

/// The marker of the copy at `path`, read on a connection of its own.
async fn marker_of(
    config: &ClientConfig,
    path: &str,
    request: &DeployRequest,
) -> Result<Option<MarkerFile>, DeployError> {
    let mut conn = TargetConnection::open(config.clone(), path).await?;
    let marker = conn.read_marker(&request.retry).await;
    conn.quit().await;
    marker
}

/// Why a swap cannot happen here: the server will not rename directories beside the site.
pub const SWAP_REFUSED: &str = "the server refuses to rename a directory beside the site";

/// Tries, before anything is uploaded, what the swap needs: renaming a directory in the site's
/// parent (many shared hosts refuse it). The probe directory is removed again.
pub async fn check_renames(
    client: &mut crate::client::FtpClient,
    names: &SwapNames,
) -> Result<(), DeployError> {
    probe_renames(client, names).await.map_err(|error| {
        DeployError::Transfer(format!(
            "{SWAP_REFUSED} ({error}); --swap needs the rename permission on that directory: \
             ask the host for it, or deploy in place without --swap"
        ))
    })
}

/// Makes a probe directory beside the site, renames it and removes it; the first refusal.
/// Validation runs it too, so a service in swap mode learns at save time what its host allows.
pub async fn probe_renames(
    client: &mut crate::client::FtpClient,
    names: &SwapNames,
) -> Result<(), ClientError> {
    let probe = format!("{}.probe", names.aside);
    let moved = format!("{}.probe-renamed", names.aside);
    let _ = client.rmdir(&probe).await;
    let _ = client.rmdir(&moved).await;
    client.mkdir(&probe).await?;
    let renamed = client.rename(&probe, &moved).await;
    let cleanup = match &renamed {
        Ok(()) => client.rmdir(&moved).await,
        Err(_) => client.rmdir(&probe).await,
    };
    renamed?;
    if let Err(error) = cleanup {
        warn!(%error, "cannot remove the rename probe directory");
    }
    Ok(())
}

/// The three renames; how long the live path was missing. A refusal of the second rename puts
/// the live copy back.
async fn swap(
    client: &mut crate::client::FtpClient,
    names: &SwapNames,
) -> Result<Duration, DeployError> {
    let refused = |error: ClientError| {
        DeployError::Transfer(format!(
            "swapping the copies: {error}; the server must allow renaming the site's directory \
             (the rename permission on its parent), else deploy without --swap"
        ))
    };
    let live_exists = client.kind_of(&names.live).await.map_err(refused)? == Some(RemoteKind::Dir);
    let started = Instant::now();
    if live_exists {
        client
            .rename(&names.live, &names.aside)
            .await
            .map_err(refused)?;
    }
    let gone = Instant::now();
    if let Err(error) = client.rename(&names.standby, &names.live).await {
        if live_exists && let Err(back) = client.rename(&names.aside, &names.live).await {
            warn!(%back, "cannot put the live copy back; the next deploy will");
        }
        return Err(refused(error));
    }
    let gap = if live_exists {
        gone.elapsed()
    } else {
        started.elapsed()
    };
    if live_exists {
        client
            .rename(&names.aside, &names.standby)
            .await
            .map_err(refused)?;
    }
    Ok(gap)
}

/// Completes a swap a previous run started and could not finish, from which names exist.
async fn finish_interrupted_swap(
    conn: &mut TargetConnection,
    names: &SwapNames,
    reporter: &dyn Reporter,
) -> Result<(), DeployError> {
    let client = &mut conn.client;
    let fail = |e| DeployError::from_client("finishing an interrupted swap", e);
    if client.kind_of(&names.aside).await.map_err(fail)? != Some(RemoteKind::Dir) {
        return Ok(());
    }
    let live = client.kind_of(&names.live).await.map_err(fail)? == Some(RemoteKind::Dir);
    let standby = client.kind_of(&names.standby).await.map_err(fail)? == Some(RemoteKind::Dir);
    warn!(
        live,
        standby, "a swap was cut short; finishing it before this deploy"
    );
    reporter.phase("finishing an interrupted swap");
    match (live, standby) {
        // Cut after the new copy went live: the old one takes the standby name.
        (true, false) => client
            .rename(&names.aside, &names.standby)
            .await
            .map_err(fail),
        // Cut after the old copy moved aside: the new one goes live, the old one standby.
        (false, true) => {
            client
                .rename(&names.standby, &names.live)
                .await
                .map_err(fail)?;
            client
                .rename(&names.aside, &names.standby)
                .await
                .map_err(fail)
        }
        // Only the moved-aside copy: it is the site.
        (false, false) => client.rename(&names.aside, &names.live).await.map_err(fail),
        (true, true) => Err(DeployError::Transfer(format!(
            "{}, {} and {} all exist; remove the one that is not the site and deploy again",
            names.live, names.standby, names.aside
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standby_copy_and_the_aside_name_sit_beside_the_live_one() {
        let names = SwapNames::for_root("www").unwrap();
        assert_eq!(
            (
                names.live.as_str(),
                names.standby.as_str(),
                names.aside.as_str()
            ),
            ("www", ".www.ferry-b", ".www.ferry-swap")
        );
        let names = SwapNames::for_root("/sites/shop/").unwrap();
        assert_eq!(names.standby, "sites/.shop.ferry-b");
        assert_eq!(names.aside, "sites/.shop.ferry-swap");
        assert!(matches!(
            SwapNames::for_root(""),
            Err(DeployError::Usage(_))
        ));
    }
}
