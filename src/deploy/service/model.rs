//! What the deploy service is about — services, their deploys, notification sets, API tokens
//! and dashboard sessions — as plain values, apart from how the [`super::store`] keeps them.

use std::path::PathBuf;

use serde::Serialize;

use super::webhook::{BranchPattern, Provider, PushCommit};
// A service's deploy settings are the engine's own values.
pub use crate::deploy::engine::maintenance::MaintenancePage;
pub use crate::deploy::engine::mode::DeployMode;
use crate::deploy::engine::mode::DeployStrategy;
use crate::deploy::engine::order::EntryPoints;
use crate::deploy::engine::target::DeployTarget;

/// A secret in memory: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the target's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    SystemRoots,
    CaFile(PathBuf),
    Insecure,
}

impl TlsVerify {
    /// The client's setting for this choice.
    pub fn to_client(&self) -> crate::client::Verification {
        match self {
            TlsVerify::SystemRoots => crate::client::Verification::SystemRoots,
            TlsVerify::CaFile(path) => crate::client::Verification::CaFile(path.clone()),
            TlsVerify::Insecure => crate::client::Verification::Insecure,
        }
    }
}

/// How a service's deploys reach its site: the engine's [`DeployStrategy`] and the entry points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploySettings {
    pub mode: DeployMode,
    /// With the swap mode: deploy in place, in ordered phases, where the server refuses it.
    pub fallback_ordered: bool,
    /// Entry-point patterns; empty: the repository's `.ferrydeploy`, else the defaults.
    pub entry_points: Vec<String>,
    /// Shown while a deploy runs in place.
    pub maintenance: Option<MaintenancePage>,
}

impl DeploySettings {
    pub fn strategy(&self) -> DeployStrategy {
        DeployStrategy {
            mode: self.mode,
            fallback_ordered: self.fallback_ordered,
            maintenance: self.maintenance.clone(),
        }
    }

    /// Refuses settings a deploy could not follow; the message says what to change.
    pub fn check(&self) -> Result<(), String> {
        self.strategy().check()?;
        Self::check_entry_points(&self.entry_points)
    }

    /// Refuses an entry-point pattern that is not a glob, naming it.
    pub fn check_entry_points(patterns: &[String]) -> Result<(), String> {
        EntryPoints::new(patterns)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The outcome of the last validation of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub ok: bool,
    pub message: String,
    pub at: String,
    /// Each check, in the order it ran (empty for a validation stored as one message).
    pub checks: Vec<ValidationCheck>,
}

/// One check of a validation run and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ValidationCheck {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// A service as stored, without its secrets (only whether each is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub repo_url: String,
    pub provider: Provider,
    pub branch: BranchPattern,
    pub target: DeployTarget,
    pub tls_verify: TlsVerify,
    pub hook_key: String,
    pub notification_set: Option<String>,
    pub enabled: bool,
    pub has_ftp_password: bool,
    pub has_provider_token: bool,
    pub has_webhook_secret: bool,
    pub last_deployed_commit: Option<String>,
    pub last_validation: Option<Validation>,
    /// The git host's API root, when set for this service (else the provider's default).
    pub api_url: Option<String>,
    /// How its deploys reach the site.
    pub deploy: DeploySettings,
    pub created_at: String,
    pub updated_at: String,
}

impl Service {
    /// The webhook path the service answers on.
    pub fn hook_path(&self) -> String {
        format!("/hooks/{}", self.hook_key)
    }
}

/// The decrypted secrets of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSecrets {
    pub ftp_password: Option<Secret>,
    pub provider_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

/// A service to add.
#[derive(Debug, Clone)]
pub struct NewService {
    pub name: String,
    pub repo_url: String,
    pub provider: Provider,
    pub branch: BranchPattern,
    pub target: DeployTarget,
    pub tls_verify: TlsVerify,
    pub notification_set: Option<String>,
    pub secrets: ServiceSecrets,
    /// The git host's API root, when not the provider's default.
    pub api_url: Option<String>,
    /// How its deploys reach the site.
    pub deploy: DeploySettings,
}

/// A change to a service: `None` leaves a field as it is. For secrets, `Some(None)` clears one.
#[derive(Debug, Clone, Default)]
pub struct ServiceUpdate {
    pub repo_url: Option<String>,
    pub provider: Option<Provider>,
    pub branch: Option<BranchPattern>,
    pub target: Option<DeployTarget>,
    pub tls_verify: Option<TlsVerify>,
    pub notification_set: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub ftp_password: Option<Option<Secret>>,
    pub provider_token: Option<Option<Secret>>,
    pub webhook_secret: Option<Option<Secret>>,
    /// The git host's API root (`Some(None)`: the provider's default).
    pub api_url: Option<Option<String>>,
    /// Issue a new URL key (the old hook URL stops working).
    pub new_hook_key: bool,
    pub deploy_mode: Option<DeployMode>,
    pub fallback_ordered: Option<bool>,
    /// Replaces the entry-point patterns (empty: the repository's, else the defaults).
    pub entry_points: Option<Vec<String>>,
    /// `Some(None)`: no maintenance page.
    pub maintenance: Option<Option<MaintenancePage>>,
}

/// Where a deploy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    Queued,
    Running,
    Ok,
    Failed,
    Skipped,
}

impl DeployStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::Running => "running",
            DeployStatus::Ok => "ok",
            DeployStatus::Failed => "failed",
            DeployStatus::Skipped => "skipped",
        }
    }

    /// The status `as_str` wrote.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => DeployStatus::Queued,
            "running" => DeployStatus::Running,
            "ok" => DeployStatus::Ok,
            "failed" => DeployStatus::Failed,
            "skipped" => DeployStatus::Skipped,
            _ => return None,
        })
    }
}

/// A deploy to queue.
#[derive(Debug, Clone, Default)]
pub struct NewDeploy {
    pub branch: Option<String>,
    pub commit_from: Option<String>,
    pub commit_to: String,
    pub delivery_id: Option<String>,
    pub user: Option<String>,
    /// The pusher's email address, when the webhook gave one.
    pub user_email: Option<String>,
    pub commits: Vec<PushCommit>,
}

/// File and byte counts of a finished deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeployStats {
    pub files_added: u64,
    pub files_modified: u64,
    pub files_removed: u64,
    pub bytes: u64,
}

/// One deploy, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub service: String,
    pub status: DeployStatus,
    pub branch: Option<String>,
    pub commit_from: Option<String>,
    pub commit_to: String,
    pub delivery_id: Option<String>,
    pub user: Option<String>,
    pub user_email: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stats: DeployStats,
    pub error: Option<String>,
    pub commits: Vec<PushCommit>,
    /// Why it was queued.
    pub kind: DeployKind,
    /// Seconds from start to end, once it has ended.
    pub duration_secs: Option<i64>,
    /// Who skipped this failed deploy, why and when.
    pub skipped: Option<SkipRecord>,
    /// The deploy that restored this failed one.
    pub restored_by: Option<i64>,
}

/// Who hears about deploys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationSet {
    pub name: String,
    pub success_emails: Vec<String>,
    pub failure_emails: Vec<String>,
    /// Also the person who pushed, after these deploys.
    pub notify_pusher: NotifyWhen,
    /// Also the authors of the deployed commits, after these deploys.
    pub notify_authors: NotifyWhen,
}

/// After which deploys a set mails the pusher or the commit authors. Written `never`,
/// `success`, `failure` or `always`; `true` and `false` are read as `always` and `never`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyWhen {
    #[default]
    Never,
    Success,
    Failure,
    Always,
}

impl NotifyWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyWhen::Never => "never",
            NotifyWhen::Success => "success",
            NotifyWhen::Failure => "failure",
            NotifyWhen::Always => "always",
        }
    }

    /// Whether a deploy that ended `ok` (or not) is one of these.
    pub fn includes(self, ok: bool) -> bool {
        match self {
            NotifyWhen::Never => false,
            NotifyWhen::Success => ok,
            NotifyWhen::Failure => !ok,
            NotifyWhen::Always => true,
        }
    }
}

impl From<bool> for NotifyWhen {
    fn from(flag: bool) -> Self {
        if flag {
            NotifyWhen::Always
        } else {
            NotifyWhen::Never
        }
    }
}

impl std::str::FromStr for NotifyWhen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "never" => NotifyWhen::Never,
            "success" => NotifyWhen::Success,
            "failure" => NotifyWhen::Failure,
            "always" => NotifyWhen::Always,
            other => {
                return Err(format!(
                    "{other:?} is not one of never, success, failure, always"
                ));
            }
        })
    }
}

impl<'de> serde::Deserialize<'de> for NotifyWhen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Word(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(flag) => Ok(flag.into()),
            Written::Word(word) => word.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::fmt::Display for NotifyWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to a notification set: `None` leaves a field as it is; the lists are replaced whole.
#[derive(Debug, Clone, Default)]
pub struct NotificationSetUpdate {
    pub success_emails: Option<Vec<String>>,
    pub failure_emails: Option<Vec<String>>,
    pub notify_pusher: Option<NotifyWhen>,
    pub notify_authors: Option<NotifyWhen>,
}

/// Why a deploy was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployKind {
    /// A webhook (or a push queued by hand).
    Push,
    /// `restore`: the newest commit of a run of failed deploys, from the target's real state.
    Restore,
    /// `rollback`: a chosen commit.
    Rollback,
}

impl DeployKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployKind::Push => "push",
            DeployKind::Restore => "restore",
            DeployKind::Rollback => "rollback",
        }
    }

    /// The kind `as_str` wrote.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "push" => DeployKind::Push,
            "restore" => DeployKind::Restore,
            "rollback" => DeployKind::Rollback,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who skipped a failed deploy, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkipRecord {
    pub by: String,
    pub reason: String,
    pub at: String,
}

/// A service's deploys in numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceStats {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// Skipped by hand, or superseded in the queue by a newer push.
    pub skipped: u64,
    pub queued: u64,
    pub running: u64,
    /// Failed among the deploys that ended ok or failed, from 0 to 1 (0 before any ended).
    pub failure_rate: f64,
    /// Who triggered the newest deploy that ended ok or failed, and when it ended.
    pub last_deploy_user: Option<String>,
    pub last_deploy_at: Option<String>,
}

/// Which deploys a page of the log shows.
#[derive(Debug, Clone, Default)]
pub struct DeployFilter {
    /// One service, or all.
    pub service: Option<String>,
    /// Failed deploys only.
    pub failed_only: bool,
    pub limit: u32,
    pub offset: u32,
}

/// How a service's deploys went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployCounts {
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    /// The newest deploy's id, for ordering services by their latest deploy.
    pub latest_id: Option<i64>,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A dashboard login that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    pub user: String,
    /// Forms and non-GET API calls of this session must carry it.
    pub csrf_token: String,
    pub expires_at: String,
    /// The account's credential stamp when the session began.
    pub credential_stamp: String,
}
