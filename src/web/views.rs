//! What the JSON API shows of services, deploys and notification sets: one `Serialize` view each,
//! listing every field it sends. Each view takes its record apart field by field, so a field added
//! to the record does not compile here until someone decides whether callers may see it — a new
//! secret cannot leak by default. The nested values (statistics, commits, validation checks,
//! progress) are plain records of what happened, shown as they are.

use std::path::PathBuf;

use serde::Serialize;

use crate::deploy::service::model::{
    Deploy, DeployKind, DeploySettings, DeployStats, DeployStatus, NotificationSet, NotifyWhen,
    Service, ServiceStats, SkipRecord, TlsVerify, Validation,
};
use crate::deploy::service::queue::DeployQueue;
use crate::deploy::service::queue::ProgressSnapshot;
use crate::deploy::service::store::DeployStoreError;
use crate::deploy::service::webhook::PushCommit;

/// A service with its newest deploy and its statistics — never its hook key (the webhook URL's
/// credential) nor a secret (only whether each is set).
#[derive(Debug, Serialize)]
pub(crate) struct ServiceView {
    name: String,
    repo: String,
    provider: &'static str,
    branch: String,
    target: String,
    tls_verify: TlsVerifyView,
    notification_set: Option<String>,
    enabled: bool,
    has_ftp_password: bool,
    has_provider_token: bool,
    has_webhook_secret: bool,
    last_deployed_commit: Option<String>,
    /// The newest deploy's status, or `new`.
    status: &'static str,
    last_validation: Option<Validation>,
    api_url: Option<String>,
    /// `ordered`, `unordered` or `swap`.
    deploy_mode: &'static str,
    fallback_ordered: bool,
    entry_points: Vec<String>,
    /// `FILE:TARGET`, or `null`.
    maintenance: Option<String>,
    created_at: String,
    updated_at: String,
    last_deploy: Option<DeployView>,
    stats: ServiceStats,
}

/// How the target's certificate is checked: `"system"`, `"insecure"` or `{"ca_file": PATH}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum TlsVerifyView {
    Named(&'static str),
    CaFile { ca_file: PathBuf },
}

impl ServiceView {
    /// `service` with its newest deploy (and that deploy's live progress) and statistics.
    /// Blocking: it reads the store.
    pub(crate) fn load(queue: &DeployQueue, service: Service) -> Result<Self, DeployStoreError> {
        let store = queue.store();
        let newest = store.deploys().list(&service.name, 1)?.into_iter().next();
        let stats = store.deploys().stats(&service.name)?;
        Ok(Self::new(
            service,
            newest.map(|deploy| DeployView::new(queue, deploy)),
            stats,
        ))
    }

    fn new(service: Service, last_deploy: Option<DeployView>, stats: ServiceStats) -> Self {
        let Service {
            id: _,
            // The URL's credential: shown once when the service is made, never by the API.
            hook_key: _,
            name,
            repo_url,
            provider,
            branch,
            target,
            tls_verify,
            notification_set,
            enabled,
            has_ftp_password,
            has_provider_token,
            has_webhook_secret,
            last_deployed_commit,
            last_validation,
            api_url,
            deploy:
                DeploySettings {
                    mode,
                    fallback_ordered,
                    entry_points,
                    maintenance,
                },
            created_at,
            updated_at,
        } = service;
        Self {
            status: last_deploy.as_ref().map_or("new", |d| d.status.as_str()),
            name,
            repo: repo_url,
            provider: provider.as_str(),
            branch: branch.as_str().to_owned(),
            target: target.to_string(),
            tls_verify: match tls_verify {
                TlsVerify::SystemRoots => TlsVerifyView::Named("system"),
                TlsVerify::Insecure => TlsVerifyView::Named("insecure"),
                TlsVerify::CaFile(ca_file) => TlsVerifyView::CaFile { ca_file },
            },
            notification_set,
            enabled,
            has_ftp_password,
            has_provider_token,
            has_webhook_secret,
            last_deployed_commit,
            last_validation,
            api_url,
            deploy_mode: mode.as_str(),
            fallback_ordered,
            entry_points,
            maintenance: maintenance.map(|page| page.to_string()),
            created_at,
            updated_at,
            last_deploy,
            stats,
        }
    }
}

/// A deploy as logged, with its live progress while it runs (`null` otherwise).
#[derive(Debug, Serialize)]
pub(crate) struct DeployView {
    id: i64,
    service: String,
    status: DeployStatus,
    branch: Option<String>,
    commit_from: Option<String>,
    commit_to: String,
    delivery_id: Option<String>,
    user: Option<String>,
    user_email: Option<String>,
    queued_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    stats: DeployStats,
    error: Option<String>,
    commits: Vec<PushCommit>,
    kind: DeployKind,
    duration_secs: Option<i64>,
    skipped: Option<SkipRecord>,
    restored_by: Option<i64>,
    progress: Option<ProgressSnapshot>,
}

impl DeployView {
    pub(crate) fn new(queue: &DeployQueue, deploy: Deploy) -> Self {
        let Deploy {
            id,
            service,
            status,
            branch,
            commit_from,
            commit_to,
            delivery_id,
            user,
            user_email,
            queued_at,
            started_at,
            finished_at,
            stats,
            error,
            commits,
            kind,
            duration_secs,
            skipped,
            restored_by,
        } = deploy;
        let progress = (status == DeployStatus::Running)
            .then(|| queue.progress(id))
            .flatten();
        Self {
            id,
            service,
            status,
            branch,
            commit_from,
            commit_to,
            delivery_id,
            user,
            user_email,
            queued_at,
            started_at,
            finished_at,
            stats,
            error,
            commits,
            kind,
            duration_secs,
            skipped,
            restored_by,
            progress,
        }
    }
}

/// A notification set: who hears about which deploys.
#[derive(Debug, Serialize)]
pub(crate) struct NotificationSetView {
    name: String,
    success_emails: Vec<String>,
    failure_emails: Vec<String>,
    notify_pusher: NotifyWhen,
    notify_authors: NotifyWhen,
}

impl From<NotificationSet> for NotificationSetView {
    fn from(set: NotificationSet) -> Self {
        let NotificationSet {
            name,
            success_emails,
            failure_emails,
            notify_pusher,
            notify_authors,
        } = set;
        Self {
            name,
            success_emails,
            failure_emails,
            notify_pusher,
            notify_authors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    use crate::deploy::service::webhook::Provider;

    #[test]
    fn a_service_shows_the_fields_it_always_showed_and_never_its_key() {
        let service = Service {
            id: 1,
            name: "site".into(),
            repo_url: "https://github.com/o/site.git".into(),
            provider: Provider::Github,
            branch: "main".parse().unwrap(),
            target: "ftps://deploy@ftp.example.com/www".parse().unwrap(),
            tls_verify: TlsVerify::SystemRoots,
            hook_key: "k".repeat(30),
            notification_set: None,
            enabled: true,
            has_ftp_password: true,
            has_provider_token: false,
            has_webhook_secret: true,
            last_deployed_commit: None,
            last_validation: None,
            api_url: None,
            deploy: DeploySettings::default(),
            created_at: "2026-01-02T03:04:05Z".into(),
            updated_at: "2026-01-02T03:04:05Z".into(),
        };
        let shown =
            serde_json::to_value(ServiceView::new(service, None, ServiceStats::default())).unwrap();
        let mut fields: Vec<&str> = shown
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "api_url",
                "branch",
                "created_at",
                "deploy_mode",
                "enabled",
                "entry_points",
                "fallback_ordered",
                "has_ftp_password",
                "has_provider_token",
                "has_webhook_secret",
                "last_deploy",
                "last_deployed_commit",
                "last_validation",
                "maintenance",
                "name",
                "notification_set",
                "provider",
                "repo",
                "stats",
                "status",
                "target",
                "tls_verify",
                "updated_at",
            ]
        );
        assert!(!shown.to_string().contains(&"k".repeat(30)), "{shown}");
        assert_eq!(shown["status"], "new");
        assert_eq!(shown["tls_verify"], "system");
        assert_eq!(shown["deploy_mode"], "ordered");
        assert_eq!(shown["maintenance"], serde_json::Value::Null);
    }

    #[test]
    fn a_ca_file_setting_reads_as_an_object_and_the_others_as_words() {
        let shown = |view| serde_json::to_value(view).unwrap();
        assert_eq!(shown(TlsVerifyView::Named("system")), json!("system"));
        let ca = TlsVerifyView::CaFile {
            ca_file: PathBuf::from("/etc/ca.pem"),
        };
        assert_eq!(shown(ca), json!({ "ca_file": "/etc/ca.pem" }));
    }
}
