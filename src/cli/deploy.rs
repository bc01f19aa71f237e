//! `ferry deploy push`, `status` and `catchup`: the deploy engine from the command line, and the
//! dispatch of every other `ferry deploy` command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use tracing::warn;

use crate::client::Verification;
use crate::deploy::engine::journal::default_state_dir;
use crate::deploy::engine::maintenance::MaintenancePage;
use crate::deploy::engine::marker::MARKER_NAME;
use crate::deploy::engine::mode::{self, DeployMode, DeployOutcome, DeployStrategy};
use crate::deploy::engine::order::Order;
use crate::deploy::engine::plan::human_bytes;
use crate::deploy::engine::push::{self, DeployRequest, Revision};
use crate::deploy::engine::retry::default_retry_policy;
use crate::deploy::engine::swap;
use crate::deploy::{DeployError, DeployTarget};

use super::accounts::read_password;
use super::deploy_serve::{DeployServeArgs, deploy_serve};
use super::{db_path, progress_line};

const DEPLOY_EXIT_CODES: &str = "\
Exit codes:
  0  done (or nothing to do)
  1  any other error
  2  usage: bad arguments, target URL or ignore pattern
  3  connection: cannot reach the server, log in, or set up TLS
  4  transfer: an upload, delete or other file operation failed
  5  git: the repository or the revision cannot be read

The password comes from --password-stdin, else FERRY_FTP_PASSWORD.";

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Upload what changed since the deployed commit, delete what was removed, then move the
    /// marker. A failed push resumes where it stopped when run again.
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Push {
        #[command(flatten)]
        target: DeployTargetArgs,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Upload the whole tree, whatever the target's marker says (first deploy).
        #[arg(long)]
        init: bool,
        /// Blue/green: bring a second copy beside the site (.NAME.ferry-b) up to the commit, then
        /// swap the two directories' names, so visitors see one whole commit or the other. Going
        /// back to the commit before swaps back with nothing to upload.
        #[arg(long, conflicts_with = "unordered")]
        swap: bool,
        /// With --swap, on a server that refuses to rename directories: deploy in place, in
        /// ordered phases, instead of failing.
        #[arg(long, requires = "swap")]
        fallback_ordered: bool,
        /// While the deploy runs in place, show visitors FILE (a file of the commit being
        /// deployed) at TARGET (relative to the deploy directory; default index.html); the file
        /// TARGET held waits beside it. At the end TARGET gets the commit's version, or after a
        /// failure its old one back; a deploy that was killed leaves the page up until the next
        /// deploy to the target takes it down. With --swap only used by --fallback-ordered.
        #[arg(long, value_name = "FILE[:TARGET]", value_parser = parse_maintenance)]
        maintenance: Option<MaintenancePage>,
    },
    /// Record a commit as deployed without uploading anything (adopting an existing site).
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Catchup {
        #[command(flatten)]
        target: DeployTargetArgs,
    },
    /// Show the deployed commit and what a push would change.
    #[command(after_help = DEPLOY_EXIT_CODES)]
    Status {
        #[command(flatten)]
        target: DeployTargetArgs,
    },
    /// Manage deploy services: a repository branch deployed to an FTP target on each push.
    Service(crate::cli::deploy_service::ServiceArgs),
    /// Manage notification sets: who is mailed after a service's deploys.
    Notify(crate::cli::deploy_notify::NotifyArgs),
    /// Manage the tokens that authenticate calls to the JSON API under `/api/`.
    Token(crate::cli::deploy_token::TokenArgs),
    /// Run the deploy service: webhooks on `POST /hooks/KEY`, a durable queue deploying each
    /// matching push in the background, a JSON API under `/api/`, and `/healthz`.
    Serve(DeployServeArgs),
    /// The deploy log: each deploy's trigger, commit, files added/modified/removed, bytes,
    /// duration and result; with SERVICE, its statistics too.
    Log(crate::cli::deploy_log::LogArgs),
    /// Mark a failed deploy skipped: a restore leaves it out. Who and why are recorded; nothing
    /// is deleted.
    Skip(crate::cli::deploy_log::SkipArgs),
    /// Redeploy a service's failed deploys: queue the newest commit of the failed run, deployed
    /// from the target's real state. `--preview` shows the commits and the net file changes.
    /// A running `ferry deploy serve` carries the deploy out.
    Restore(crate::cli::deploy_log::RestoreArgs),
    /// Deploy a chosen commit (roll back or forward): queue it, or `--preview` the net file
    /// changes. A running `ferry deploy serve` carries the deploy out.
    Rollback(crate::cli::deploy_log::RollbackArgs),
}

/// Where from and where to, shared by the deploy commands.
#[derive(Debug, clap::Args)]
pub struct DeployTargetArgs {
    /// The git repository (a work tree or a bare repository).
    #[arg(value_name = "REPO_DIR", default_value = ".")]
    pub repo_dir: PathBuf,
    /// ftp://USER@HOST[:PORT]/PATH, or ftps:// for explicit FTPS (AUTH TLS); PATH is relative
    /// to the login directory.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Deploy the tip of this branch (default: HEAD).
    #[arg(long, value_name = "B", conflicts_with = "commit")]
    pub branch: Option<String>,
    /// Deploy this commit.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Do not verify the server's TLS certificate (the connection can then be read and changed
    /// by anyone on the path).
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
    /// Verify the server's certificate against this PEM file instead of the system roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Read the FTP password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Leave files matching this gitignore-style pattern alone (repeatable; adds to
    /// .ferryignore).
    #[arg(long, value_name = "PAT")]
    pub exclude: Vec<String>,
    /// Connections to upload and delete over (push).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Seconds a connection may sit idle (waiting for the others) before it sends a NOOP, so
    /// that the server does not time it out.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_keepalive)]
    pub keepalive: f64,
    /// A file pattern that names an entry point, uploaded after everything it may reference
    /// (repeatable; replaces the defaults *.html, *.htm, *.php, *.shtml, index.*, .htaccess and
    /// .ferrydeploy's `entry`).
    #[arg(long = "entry", value_name = "GLOB")]
    pub entry_points: Vec<String>,
    /// Upload in one go instead of phases (new files, changed files, changed entry points,
    /// then deletes): faster by the waits between phases, but visitors may meet a page before
    /// its assets.
    #[arg(long)]
    pub unordered: bool,
}

fn parse_maintenance(text: &str) -> Result<MaintenancePage, String> {
    text.parse()
}

fn parse_keepalive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.05..=3600.0).contains(&secs) => Ok(secs),
        _ => Err("expected seconds between 0.05 and 3600".to_owned()),
    }
}

impl DeployTargetArgs {
    fn request(&self, init: bool) -> Result<DeployRequest, DeployError> {
        let target = DeployTarget::parse(&self.to)?;
        let password = if self.password_stdin {
            read_password(true, "ferry deploy push")
                .map_err(|e| DeployError::Usage(format!("{e:#}")))?
        } else if let Some(password) = std::env::var("FERRY_FTP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            password
        } else if let Some(password) = target.password.clone() {
            warn!(
                "the password is in the --to URL, where other users may read it; prefer FERRY_FTP_PASSWORD or --password-stdin"
            );
            password
        } else {
            return Err(DeployError::Usage(
                "no FTP password: set FERRY_FTP_PASSWORD or pass --password-stdin".to_owned(),
            ));
        };
        let verification = match (&self.ca_file, self.insecure) {
            (Some(path), _) => Verification::CaFile(path.clone()),
            (None, true) => Verification::Insecure,
            (None, false) => Verification::SystemRoots,
        };
        let revision = match (&self.branch, &self.commit) {
            (Some(branch), _) => Revision::Branch(branch.clone()),
            (None, Some(commit)) => Revision::Commit(commit.clone()),
            (None, None) => Revision::Head,
        };
        Ok(DeployRequest {
            repo_dir: self.repo_dir.clone(),
            client: target.client_config(password, verification),
            target,
            revision,
            excludes: self.exclude.clone(),
            jobs: usize::from(self.jobs),
            init,
            forward_only: false,
            never_behind: None,
            entry_points: self.entry_points.clone(),
            order: self.unordered.then_some(Order::Unordered),
            state_dir: default_state_dir(),
            retry: default_retry_policy(),
            keepalive: Duration::from_secs_f64(self.keepalive),
        })
    }
}

pub(super) async fn deploy_command(
    db: Option<PathBuf>,
    command: DeployCommand,
) -> anyhow::Result<()> {
    match command {
        DeployCommand::Service(args) => {
            crate::cli::deploy_service::run(&db_path(db, None), args).await?;
        }
        DeployCommand::Serve(args) => deploy_serve(&db_path(db, None), args).await?,
        DeployCommand::Notify(args) => crate::cli::deploy_notify::run(&db_path(db, None), args)?,
        DeployCommand::Token(args) => crate::cli::deploy_token::run(&db_path(db, None), args)?,
        DeployCommand::Log(args) => crate::cli::deploy_log::log(&db_path(db, None), args)?,
        DeployCommand::Skip(args) => crate::cli::deploy_log::skip(&db_path(db, None), args)?,
        DeployCommand::Restore(args) => {
            crate::cli::deploy_log::restore(&db_path(db, None), args).await?;
        }
        DeployCommand::Rollback(args) => {
            crate::cli::deploy_log::rollback(&db_path(db, None), args).await?;
        }
        DeployCommand::Push {
            target,
            dry_run: true,
            init,
            ..
        } => {
            let request = target.request(init)?;
            let prepared = push::dry_run(&request).await?;
            print_state(&request, &prepared);
            crate::outln!("dry run: nothing was changed");
            for step in prepared.plan.steps() {
                crate::outln!("  {step}");
            }
            prepared.close().await;
        }
        DeployCommand::Push {
            target,
            dry_run: false,
            init,
            swap,
            fallback_ordered,
            maintenance,
        } => {
            let request = target.request(init)?;
            let strategy = DeployStrategy {
                mode: if swap {
                    DeployMode::Swap
                } else if target.unordered {
                    DeployMode::Unordered
                } else {
                    DeployMode::Ordered
                },
                fallback_ordered,
                maintenance,
            };
            let reporter = progress_line::ProgressLine::new();
            let url = request.target.display_url();
            let outcome = mode::deploy(&request, &strategy, Arc::clone(&reporter) as _).await;
            reporter.finish().await;
            let outcome = match outcome? {
                DeployOutcome::Swapped(swapped) => {
                    report_swap(&url, &swapped);
                    return Ok(());
                }
                DeployOutcome::InPlace { outcome, .. } => outcome,
            };
            if outcome.up_to_date {
                crate::outln!("{url} is up to date at {}", outcome.plan.to);
            } else {
                let report = outcome.report.unwrap_or_default();
                crate::outln!(
                    "deployed {} to {url}: {} uploaded ({}), {} deleted, {} directories created, {} removed",
                    outcome.plan.to,
                    report.uploaded,
                    human_bytes(report.bytes),
                    report.deleted,
                    report.dirs_created,
                    report.dirs_removed,
                );
                if report.verified > 0 {
                    crate::outln!(
                        "verified: the server's HASH of {} of the {} uploads matches what was sent",
                        report.verified,
                        report.uploaded
                    );
                }
            }
        }
        DeployCommand::Catchup { target } => {
            let request = target.request(false)?;
            let marker = push::catchup(&request).await?;
            crate::outln!(
                "recorded {} as deployed on {} (nothing uploaded)",
                marker.commit,
                request.target.display_url()
            );
        }
        DeployCommand::Status { target } => {
            let request = target.request(false)?;
            let prepared = push::dry_run(&request).await?;
            print_state(&request, &prepared);
            prepared.close().await;
        }
    }
    Ok(())
}

/// What a swapped deploy did, for the command line.
fn report_swap(url: &str, swapped: &swap::SwapOutcome) {
    let standby = &swapped.standby;
    if swapped.already_live {
        crate::outln!("{url} is up to date at {}", standby.plan.to);
        return;
    }
    let report = standby.report.clone().unwrap_or_default();
    crate::outln!(
        "deployed {} to {url} by swapping copies: {} uploaded ({}) and {} deleted in the standby \
         copy, then swapped live ({} ms without a site)",
        standby.plan.to,
        report.uploaded,
        human_bytes(report.bytes),
        report.deleted,
        swapped
            .gap
            .map_or(0.0, |gap| gap.as_secs_f64() * 1000.0)
            .round(),
    );
}

fn print_state(request: &DeployRequest, prepared: &push::Prepared) {
    crate::outln!("target:   {}", request.target.display_url());
    match &prepared.marker {
        Some(marker) => crate::outln!(
            "deployed: {} ({} by {})",
            marker.commit,
            marker.time,
            marker.who
        ),
        None => crate::outln!("deployed: nothing (no {MARKER_NAME} on the target)"),
    }
    crate::outln!("to push:  {}", prepared.target_commit);
    if prepared.journaled > 0 {
        crate::outln!(
            "an unfinished deploy completed {} operations; a push resumes it",
            prepared.journaled
        );
    }
    if prepared.plan.is_empty() {
        crate::outln!("changes:  none");
    } else {
        crate::outln!("changes:  {}", prepared.plan.summary());
    }
}
