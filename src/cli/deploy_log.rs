//! `ferry deploy log`, `skip`, `restore` and `rollback`: the clap types and their handlers. They
//! work on the database; a running `ferry deploy serve` (the queue) carries out the deploys that
//! `restore` and `rollback` queue. The command names and flags are a contract; extend them, never
//! rename them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::deploy_store::{Access, SecretKeyArgs};
use crate::deploy::engine::marker::current_deployer;
use crate::deploy::engine::plan::human_bytes;
use crate::deploy::service::model::{Deploy, DeployFilter, DeployStatus, ServiceStats};
use crate::deploy::service::queue::{DeployQueue, QueueConfig};
use crate::deploy::service::restore::{self, DeployedSource, Preview};
use crate::deploy::service::store::DeployStore;

/// `ferry deploy log`
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this service's deploys (and its statistics).
    pub service: Option<String>,
    /// Only failed deploys.
    #[arg(long)]
    pub failed: bool,
    /// Show at most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    /// As JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

/// `ferry deploy skip`
#[derive(Debug, Args)]
pub struct SkipArgs {
    /// The failed deploy (an id from `ferry deploy log`).
    pub deploy_id: i64,
    /// Why it is skipped (recorded).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who skips it (default: the local user and host).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

/// What `restore` and `rollback` share.
#[derive(Debug, Args)]
pub struct QueueingArgs {
    /// Show the commits and the net file changes, queue nothing.
    #[arg(long)]
    pub preview: bool,
    /// As JSON.
    #[arg(long)]
    pub json: bool,
    /// Who asks for the deploy, recorded as its user (default: the local user and host).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Where the repository mirrors live (default: DB.state beside the database, as for
    /// `deploy serve`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

/// `ferry deploy restore`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The service whose failed deploys to redeploy.
    pub service: String,
    #[command(flatten)]
    pub queueing: QueueingArgs,
}

/// `ferry deploy rollback`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The service to deploy the commit to.
    pub service: String,
    /// The commit to deploy (a full or abbreviated id).
    pub commit: String,
    #[command(flatten)]
    pub queueing: QueueingArgs,
}

/// `ferry deploy log [SERVICE] [--failed] [--limit N] [--json]`
pub fn log(db: &Path, args: LogArgs) -> anyhow::Result<()> {
    let store = args.key.open_store(db, Access::Read)?;
    let filter = DeployFilter {
        service: args.service.clone(),
        failed_only: args.failed,
        limit: args.limit,
        offset: 0,
    };
    let (deploys, total) = store.deploys().log(&filter)?;
    let stats = args
        .service
        .as_deref()
        .map(|name| store.deploys().stats(name))
        .transpose()?;
    if args.json {
        let value = json!({ "deploys": deploys, "total": total, "stats": stats });
        crate::outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    crate::outln!(
        "{:<6} {:<16} {:<9} {:<8} {:<16} {:<20} {:<14} {:>10} {:>8}  ERROR",
        "ID",
        "SERVICE",
        "STATUS",
        "COMMIT",
        "USER",
        "DATE",
        "FILES +/~/-",
        "BYTES",
        "DURATION"
    );
    for deploy in &deploys {
        crate::outln!("{}", log_line(deploy));
    }
    if deploys.len() as u64 != total {
        crate::outln!("({} of {total} shown; --limit shows more)", deploys.len());
    }
    if let (Some(name), Some(stats)) = (&args.service, &stats) {
        crate::outln!("{name}: {}", stats_line(stats));
    }
    Ok(())
}

fn log_line(deploy: &Deploy) -> String {
    let status = match (deploy.status, deploy.restored_by) {
        (DeployStatus::Failed, Some(_)) => "restored",
        (status, _) => status.as_str(),
    };
    let date = deploy
        .finished_at
        .as_deref()
        .or(deploy.started_at.as_deref())
        .unwrap_or(&deploy.queued_at);
    let files = format!(
        "+{} ~{} -{}",
        deploy.stats.files_added, deploy.stats.files_modified, deploy.stats.files_removed
    );
    let duration = deploy
        .duration_secs
        .map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
    let error = deploy
        .error
        .as_deref()
        .and_then(|e| e.lines().next())
        .unwrap_or("");
    let note = match (&deploy.skipped, deploy.restored_by) {
        (Some(skip), _) => format!("skipped by {}: {}; ", skip.by, skip.reason),
        (None, Some(by)) => format!("restored by deploy {by}; "),
        (None, None) => String::new(),
    };
    format!(
        "{:<6} {:<16} {:<9} {:<8} {:<16} {:<20} {:<14} {:>10} {:>8}  {note}{error}",
        deploy.id,
        deploy.service,
        status,
        short(&deploy.commit_to),
        deploy.user.as_deref().unwrap_or("-"),
        date,
        files,
        human_bytes(deploy.stats.bytes),
        duration,
    )
}

/// `7 deploys, 4 ok, 2 failed, 1 skipped, ...`
pub fn stats_line(stats: &ServiceStats) -> String {
    let last = match (&stats.last_deploy_user, &stats.last_deploy_at) {
        (user, Some(at)) => format!("last deploy {at} by {}", user.as_deref().unwrap_or("-")),
        _ => "no deploy ended yet".to_owned(),
    };
    format!(
        "{} deploys, {} ok, {} failed, {} skipped, {} queued, {} running; failure rate {:.0}%; {last}",
        stats.total,
        stats.ok,
        stats.failed,
        stats.skipped,
        stats.queued,
        stats.running,
        stats.failure_rate * 100.0,
    )
}

/// `ferry deploy skip DEPLOY_ID --reason TEXT [--by NAME]`
pub fn skip(db: &Path, args: SkipArgs) -> anyhow::Result<()> {
    let store = args.key.open_store(db, Access::Change)?;
    let by = args.by.unwrap_or_else(current_deployer);
    let deploy = store.deploys().skip(args.deploy_id, &by, &args.reason)?;
    crate::outln!(
        "deploy {} of {} skipped by {by}: {}",
        deploy.id,
        deploy.service,
        args.reason.trim()
    );
    Ok(())
}

/// A queue over the database for its mirrors and store; `deploy serve` runs the deploys.
fn queue(db: &Path, args: &QueueingArgs) -> anyhow::Result<Arc<DeployQueue>> {
    let store = args.key.open_store(db, Access::Change)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| QueueConfig::default_state_dir(db));
    Ok(DeployQueue::new(
        Arc::new(store),
        QueueConfig {
            parallel: 1,
            state_dir,
        },
    ))
}

/// `ferry deploy restore SERVICE [--preview] [--json]`
pub async fn restore(db: &Path, args: RestoreArgs) -> anyhow::Result<()> {
    let queue = queue(db, &args.queueing)?;
    let store = Arc::clone(queue.store());
    if !args.queueing.preview {
        refuse_if_active(&store, &args.service)?;
    }
    let preview = restore::preview_restore(&queue, &args.service).await?;
    if args.queueing.preview {
        return print_preview(&preview, args.queueing.json);
    }
    let by = args.queueing.by.unwrap_or_else(current_deployer);
    let id = restore::queue_restore(&store, &args.service, Some(&by))?;
    print_queued(&preview, id, args.queueing.json)
}

/// `ferry deploy rollback SERVICE COMMIT [--preview] [--json]`
pub async fn rollback(db: &Path, args: RollbackArgs) -> anyhow::Result<()> {
    let queue = queue(db, &args.queueing)?;
    if !args.queueing.preview {
        refuse_if_active(queue.store(), &args.service)?;
    }
    let preview = restore::preview_rollback(&queue, &args.service, &args.commit).await?;
    if args.queueing.preview {
        return print_preview(&preview, args.queueing.json);
    }
    let by = args.queueing.by.unwrap_or_else(current_deployer);
    let (id, _) = restore::queue_rollback(&queue, &args.service, &preview.to, Some(&by)).await?;
    print_queued(&preview, id, args.queueing.json)
}

/// Fails early, before any fetch, when a deploy of the service is queued or running.
fn refuse_if_active(store: &DeployStore, service: &str) -> anyhow::Result<()> {
    if let Some(active) = store.deploys().active(service)? {
        return Err(
            crate::deploy::service::store::DeployStoreError::DeployActive {
                service: service.to_owned(),
                id: active.id,
                status: active.status,
            }
            .into(),
        );
    }
    Ok(())
}

fn print_queued(preview: &Preview, id: i64, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let value = json!({ "deploy": id, "preview": preview });
        crate::outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_preview(preview, false)?;
    crate::outln!("queued deploy {id}: a running `ferry deploy serve` deploys it");
    Ok(())
}

/// The preview as text: what is deployed, the commits, then one `A|M|D path` line per file.
fn print_preview(preview: &Preview, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        crate::outln!("{}", serde_json::to_string_pretty(preview)?);
        return Ok(());
    }
    crate::outln!("service:  {} ({})", preview.service, preview.kind.as_str());
    if !preview.deploys.is_empty() {
        let ids: Vec<String> = preview.deploys.iter().map(i64::to_string).collect();
        crate::outln!("restores: deploys {}", ids.join(", "));
    }
    let source = match preview.deployed_source {
        DeployedSource::Marker => "read from the target's marker",
        DeployedSource::Store => "as last recorded; the target's marker was not read",
        DeployedSource::None => "nothing deployed yet",
    };
    crate::outln!(
        "deployed: {} ({source})",
        preview.deployed.as_deref().unwrap_or("-")
    );
    if let Some(note) = &preview.marker_note {
        crate::outln!("note:     {note}");
    }
    crate::outln!("to:       {}", preview.to);
    if let Some(id) = preview.active_deploy {
        crate::outln!("busy:     deploy {id} is queued or running; a restore must wait for it");
    }
    crate::outln!("commits:");
    for commit in &preview.commits {
        crate::outln!(
            "  {} {} ({})",
            short(&commit.id),
            commit.message.lines().next().unwrap_or(""),
            commit.author
        );
    }
    crate::outln!("changes:  {}", preview.changes.len());
    for file in &preview.changes {
        crate::outln!("{} {}", file.change.letter(), file.path);
    }
    Ok(())
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}
