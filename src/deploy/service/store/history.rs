//! The deploy log read back: statistics per service, filtered pages of the log, skipping a
//! failed deploy, and the range of failed deploys a restore covers. History is never deleted: a
//! skipped or restored deploy keeps its row, with who skipped it and why, or which deploy
//! restored it.

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use serde::Serialize;

use super::{
    DEPLOY_SELECT, Deploy, DeployStatus, DeployStoreError, NOW, NewDeploy, ServiceStore,
    read_deploy, service_id,
};

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

    pub(super) fn parse(text: &str) -> Result<Self, DeployStoreError> {
        Ok(match text {
            "push" => DeployKind::Push,
            "restore" => DeployKind::Restore,
            "rollback" => DeployKind::Rollback,
            other => return Err(DeployStoreError::Corrupt(format!("deploy kind {other:?}"))),
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

impl ServiceStore {
    /// The service's deploy counts, failure rate and newest finished deploy.
    pub fn service_stats(&self, service: &str) -> Result<ServiceStats, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let count = |n: i64| n.max(0) as u64;
        let mut stats = connection.query_row(
            "SELECT count(*), total(status = 'ok'), total(status = 'failed'),
                    total(status = 'skipped'), total(status = 'queued'), total(status = 'running')
             FROM deploy_deploys WHERE service_id = ?1",
            [service_id],
            |row| {
                Ok(ServiceStats {
                    total: count(row.get(0)?),
                    ok: row.get::<_, f64>(1)? as u64,
                    failed: row.get::<_, f64>(2)? as u64,
                    skipped: row.get::<_, f64>(3)? as u64,
                    queued: row.get::<_, f64>(4)? as u64,
                    running: row.get::<_, f64>(5)? as u64,
                    ..ServiceStats::default()
                })
            },
        )?;
        let ended = stats.ok + stats.failed;
        if ended > 0 {
            stats.failure_rate = stats.failed as f64 / ended as f64;
        }
        if let Some((user, at)) = connection
            .query_row(
                "SELECT user, finished_at FROM deploy_deploys
                 WHERE service_id = ?1 AND status IN ('ok', 'failed')
                 ORDER BY id DESC LIMIT 1",
                [service_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
        {
            stats.last_deploy_user = user;
            stats.last_deploy_at = at;
        }
        Ok(stats)
    }

    /// A page of the deploy log, newest first, and how many deploys match in all.
    pub fn deploy_log(
        &self,
        filter: &DeployFilter,
    ) -> Result<(Vec<Deploy>, u64), DeployStoreError> {
        let connection = self.lock();
        let service_id = filter
            .service
            .as_deref()
            .map(|name| service_id(&connection, name))
            .transpose()?;
        let condition = "(?1 IS NULL OR d.service_id = ?1) AND (?2 = 0 OR d.status = 'failed')";
        let total: i64 = connection.query_row(
            &format!("SELECT count(*) FROM deploy_deploys d WHERE {condition}"),
            params![service_id, filter.failed_only],
            |row| row.get(0),
        )?;
        let mut statement = connection.prepare(&format!(
            "{DEPLOY_SELECT} WHERE {condition} ORDER BY d.id DESC LIMIT ?3 OFFSET ?4"
        ))?;
        let rows = statement.query_map(
            params![service_id, filter.failed_only, filter.limit, filter.offset],
            read_deploy,
        )?;
        let deploys = rows.map(|row| row?).collect::<Result<Vec<_>, _>>()?;
        Ok((deploys, total.max(0) as u64))
    }

    /// Marks a failed deploy skipped: a restore leaves it out. `by` and `reason` are recorded.
    pub fn skip_deploy(&self, id: i64, by: &str, reason: &str) -> Result<Deploy, DeployStoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DeployStoreError::SkipNeedsReason);
        }
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (status, restored_by): (String, Option<i64>) = tx
            .query_row(
                "SELECT status, restored_by FROM deploy_deploys WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or(DeployStoreError::NoSuchDeploy(id))?;
        match (status.as_str(), restored_by) {
            ("failed", None) => {}
            ("failed", Some(by)) => {
                return Err(DeployStoreError::NotSkippable {
                    id,
                    status: format!("already restored by deploy {by}"),
                });
            }
            (other, _) => {
                return Err(DeployStoreError::NotSkippable {
                    id,
                    status: other.to_owned(),
                });
            }
        }
        tx.execute(
            &format!(
                "UPDATE deploy_deploys SET status = 'skipped', skipped_by = ?1, skip_reason = ?2,
                     skipped_at = {NOW}
                 WHERE id = ?3"
            ),
            params![by, reason, id],
        )?;
        let deploy = tx.query_row(
            &format!("{DEPLOY_SELECT} WHERE d.id = ?1"),
            [id],
            read_deploy,
        )??;
        tx.commit()?;
        Ok(deploy)
    }

    /// The failed deploys a restore covers, oldest first: every failed deploy after the last
    /// successful one that is neither skipped nor restored. Empty when there is nothing to
    /// restore; the last one holds the commit to deploy.
    pub fn restore_range(&self, service: &str) -> Result<Vec<Deploy>, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let mut statement = connection.prepare(&format!(
            "{DEPLOY_SELECT}
             WHERE d.service_id = ?1 AND d.status = 'failed' AND d.restored_by IS NULL
               AND d.id > (SELECT coalesce(max(id), 0) FROM deploy_deploys
                           WHERE service_id = ?1 AND status = 'ok')
             ORDER BY d.id"
        ))?;
        let rows = statement.query_map([service_id], read_deploy)?;
        rows.map(|row| row?).collect()
    }

    /// The service's newest queued or running deploy.
    pub fn active_deploy(&self, service: &str) -> Result<Option<Deploy>, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        active_deploy(&connection, service_id)
    }

    /// Queues a deploy of `kind` unless one of the service is queued or running
    /// ([`DeployStoreError::DeployActive`]); its id.
    pub fn queue_exclusive(
        &self,
        service: &str,
        new: &NewDeploy,
        kind: DeployKind,
    ) -> Result<i64, DeployStoreError> {
        let commits = serde_json::to_string(&new.commits)
            .map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let service_id = service_id(&tx, service)?;
        if let Some(active) = active_deploy(&tx, service_id)? {
            return Err(DeployStoreError::DeployActive {
                service: service.to_owned(),
                id: active.id,
                status: active.status,
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO deploy_deploys (service_id, status, branch, commit_from, commit_to,
                     delivery_id, user, queued_at, commits, kind)
                 VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, {NOW}, ?7, ?8)"
            ),
            params![
                service_id,
                new.branch,
                new.commit_from,
                new.commit_to,
                new.delivery_id,
                new.user,
                commits,
                kind.as_str()
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }
}

fn active_deploy(
    connection: &Connection,
    service_id: i64,
) -> Result<Option<Deploy>, DeployStoreError> {
    connection
        .query_row(
            &format!(
                "{DEPLOY_SELECT} WHERE d.service_id = ?1 AND d.status IN ('queued', 'running')
                 ORDER BY d.id DESC LIMIT 1"
            ),
            [service_id],
            read_deploy,
        )
        .optional()?
        .transpose()
}

/// After deploy `id` succeeded: if it is a restore, the failed deploys since the previous
/// successful one that nobody skipped are restored by it.
pub(super) fn mark_restored(tx: &Transaction<'_>, id: i64) -> Result<(), DeployStoreError> {
    tx.execute(
        "UPDATE deploy_deploys SET restored_by = ?1
         WHERE (SELECT kind FROM deploy_deploys WHERE id = ?1) = 'restore'
           AND service_id = (SELECT service_id FROM deploy_deploys WHERE id = ?1)
           AND status = 'failed' AND restored_by IS NULL AND id < ?1
           AND id > (SELECT coalesce(max(o.id), 0) FROM deploy_deploys o
                     WHERE o.service_id = deploy_deploys.service_id AND o.status = 'ok'
                       AND o.id < ?1)",
        [id],
    )?;
    Ok(())
}

/// A restore coalesced into a newer push makes that push the restore.
pub(super) fn carry_restore(
    tx: &Transaction<'_>,
    newest: i64,
    older: impl IntoIterator<Item = i64>,
) -> Result<(), DeployStoreError> {
    for old in older {
        tx.execute(
            "UPDATE deploy_deploys SET kind = 'restore'
             WHERE id = ?1 AND (SELECT kind FROM deploy_deploys WHERE id = ?2) = 'restore'",
            params![newest, old],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{NewService, ServiceSecrets, TlsVerify};
    use super::*;
    use crate::deploy::service::secret_key::SecretKey;
    use crate::deploy::service::store::DeployStats;
    use crate::deploy::service::webhook::{Provider, PushCommit};

    fn store_with(names: &[&str]) -> ServiceStore {
        let store = ServiceStore::open_in_memory(SecretKey::generate().0).unwrap();
        for name in names {
            store
                .add_service(&NewService {
                    name: (*name).into(),
                    repo_url: "/srv/git/site.git".into(),
                    provider: Provider::Git,
                    branch: "main".parse().unwrap(),
                    target: "ftp://deploy@127.0.0.1:2121/www".parse().unwrap(),
                    tls_verify: TlsVerify::SystemRoots,
                    notification_set: None,
                    secrets: ServiceSecrets::default(),
                    api_url: None,
                })
                .unwrap();
        }
        store
    }

    fn commit(id: &str) -> PushCommit {
        PushCommit {
            id: id.into(),
            message: format!("commit {id}"),
            author: "Mona".into(),
            author_email: None,
            timestamp: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// Queues, claims and ends a deploy of `commit` by `user`; its id.
    fn deploy(store: &ServiceStore, service: &str, commit_id: &str, user: &str, ok: bool) -> i64 {
        let id = store
            .queue_deploy(
                service,
                &NewDeploy {
                    commit_to: commit_id.into(),
                    user: Some(user.into()),
                    commits: vec![commit(commit_id)],
                    ..NewDeploy::default()
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(store.claim_next_deploy(service).unwrap().unwrap().id, id);
        let (status, error) = if ok {
            (DeployStatus::Ok, None)
        } else {
            (DeployStatus::Failed, Some("550 permission denied"))
        };
        let stats = DeployStats {
            files_added: 2,
            files_modified: 1,
            files_removed: 0,
            bytes: 1000,
        };
        store.finish_deploy(id, status, stats, error).unwrap();
        id
    }

    fn ids(deploys: &[Deploy]) -> Vec<i64> {
        deploys.iter().map(|d| d.id).collect()
    }

    #[test]
    fn statistics_count_each_outcome_and_the_failure_rate_of_ended_deploys() {
        let store = store_with(&["site", "other"]);
        let empty = store.service_stats("site").unwrap();
        assert_eq!(empty, ServiceStats::default(), "no deploys, no rate");

        deploy(&store, "site", "c1", "ann", true);
        let failed = deploy(&store, "site", "c2", "bob", false);
        deploy(&store, "site", "c3", "cy", false);
        deploy(&store, "site", "c4", "dee", true);
        deploy(&store, "other", "x1", "eve", false);
        store.skip_deploy(failed, "ops", "broken build").unwrap();
        store
            .queue_deploy(
                "site",
                &NewDeploy {
                    commit_to: "c5".into(),
                    ..NewDeploy::default()
                },
            )
            .unwrap();

        let stats = store.service_stats("site").unwrap();
        assert_eq!(
            (
                stats.total,
                stats.ok,
                stats.failed,
                stats.skipped,
                stats.queued
            ),
            (5, 2, 1, 1, 1),
            "{stats:?}"
        );
        assert!((stats.failure_rate - 1.0 / 3.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.last_deploy_user.as_deref(), Some("dee"));
        assert!(stats.last_deploy_at.is_some());
        let other = store.service_stats("other").unwrap();
        assert_eq!((other.total, other.failed), (1, 1));
        assert!((other.failure_rate - 1.0).abs() < 1e-9);
        assert!(matches!(
            store.service_stats("nope"),
            Err(DeployStoreError::NoSuchService(_))
        ));
    }

    #[test]
    fn the_log_filters_by_service_and_failure_and_pages_newest_first() {
        let store = store_with(&["site", "other"]);
        let a = deploy(&store, "site", "c1", "ann", true);
        let b = deploy(&store, "site", "c2", "ann", false);
        let c = deploy(&store, "other", "x1", "ann", false);
        let d = deploy(&store, "site", "c3", "ann", false);
        let page = |service: Option<&str>, failed_only, limit, offset| {
            let filter = DeployFilter {
                service: service.map(str::to_owned),
                failed_only,
                limit,
                offset,
            };
            let (deploys, total) = store.deploy_log(&filter).unwrap();
            (ids(&deploys), total)
        };
        assert_eq!(page(None, false, 10, 0), (vec![d, c, b, a], 4));
        assert_eq!(page(Some("site"), false, 10, 0), (vec![d, b, a], 3));
        assert_eq!(page(Some("site"), true, 10, 0), (vec![d, b], 2));
        assert_eq!(page(None, true, 1, 1), (vec![c], 3));
        let (deploys, _) = store
            .deploy_log(&DeployFilter {
                limit: 1,
                ..DeployFilter::default()
            })
            .unwrap();
        assert!(deploys[0].duration_secs.is_some_and(|s| s >= 0));
        assert_eq!(deploys[0].error.as_deref(), Some("550 permission denied"));
    }

    #[test]
    fn only_a_failed_deploy_can_be_skipped_and_the_record_keeps_who_and_why() {
        let store = store_with(&["site"]);
        let ok = deploy(&store, "site", "c1", "ann", true);
        let failed = deploy(&store, "site", "c2", "ann", false);
        assert!(matches!(
            store.skip_deploy(ok, "ops", "no"),
            Err(DeployStoreError::NotSkippable { .. })
        ));
        assert!(matches!(
            store.skip_deploy(failed, "ops", "  "),
            Err(DeployStoreError::SkipNeedsReason)
        ));
        assert!(matches!(
            store.skip_deploy(999, "ops", "why"),
            Err(DeployStoreError::NoSuchDeploy(999))
        ));
        let skipped = store.skip_deploy(failed, "ops", "bad commit").unwrap();
        assert_eq!(skipped.status, DeployStatus::Skipped);
        let record = skipped.skipped.unwrap();
        assert_eq!(
            (record.by.as_str(), record.reason.as_str()),
            ("ops", "bad commit")
        );
        assert!(!record.at.is_empty());
        assert_eq!(
            skipped.error.as_deref(),
            Some("550 permission denied"),
            "history is kept"
        );
        assert!(matches!(
            store.skip_deploy(failed, "ops", "again"),
            Err(DeployStoreError::NotSkippable { .. })
        ));
    }

    #[test]
    fn the_restore_range_runs_from_the_first_failed_after_the_last_ok_leaving_out_skipped() {
        let store = store_with(&["site"]);
        assert!(store.restore_range("site").unwrap().is_empty());
        let early_failure = deploy(&store, "site", "c1", "ann", false);
        deploy(&store, "site", "c2", "ann", true);
        assert!(
            store.restore_range("site").unwrap().is_empty(),
            "a failure before a success is not restored"
        );
        let f3 = deploy(&store, "site", "c3", "ann", false);
        let f4 = deploy(&store, "site", "c4", "ann", false);
        let f5 = deploy(&store, "site", "c5", "ann", false);
        assert_eq!(ids(&store.restore_range("site").unwrap()), [f3, f4, f5]);
        store.skip_deploy(f3, "ops", "superseded").unwrap();
        assert_eq!(ids(&store.restore_range("site").unwrap()), [f4, f5]);

        // A restore that ends ok restores the range; an earlier failure stays as it was.
        let restore = store
            .queue_exclusive(
                "site",
                &NewDeploy {
                    commit_to: "c5".into(),
                    ..NewDeploy::default()
                },
                DeployKind::Restore,
            )
            .unwrap();
        let busy = store.queue_exclusive(
            "site",
            &NewDeploy {
                commit_to: "c5".into(),
                ..NewDeploy::default()
            },
            DeployKind::Restore,
        );
        assert!(
            matches!(busy, Err(DeployStoreError::DeployActive { id, status: DeployStatus::Queued, .. }) if id == restore),
            "{busy:?}"
        );
        assert_eq!(store.active_deploy("site").unwrap().unwrap().id, restore);
        assert_eq!(
            store.claim_next_deploy("site").unwrap().unwrap().kind,
            DeployKind::Restore
        );
        store
            .finish_deploy(restore, DeployStatus::Ok, DeployStats::default(), None)
            .unwrap();
        assert!(store.restore_range("site").unwrap().is_empty());
        for id in [f4, f5] {
            assert_eq!(store.deploy(id).unwrap().restored_by, Some(restore));
        }
        assert_eq!(
            store.deploy(f3).unwrap().restored_by,
            None,
            "skipped stays skipped"
        );
        assert_eq!(store.deploy(early_failure).unwrap().restored_by, None);
        assert!(matches!(
            store.skip_deploy(f4, "ops", "late"),
            Err(DeployStoreError::NotSkippable { .. })
        ));
    }

    #[test]
    fn a_plain_push_ending_ok_restores_nothing_and_a_coalesced_restore_carries_over() {
        let store = store_with(&["site"]);
        let f1 = deploy(&store, "site", "c1", "ann", false);
        deploy(&store, "site", "c2", "ann", true);
        assert_eq!(store.deploy(f1).unwrap().restored_by, None);

        let f3 = deploy(&store, "site", "c3", "ann", false);
        store
            .queue_exclusive(
                "site",
                &NewDeploy {
                    commit_to: "c3".into(),
                    ..NewDeploy::default()
                },
                DeployKind::Restore,
            )
            .unwrap();
        let push = store
            .queue_deploy(
                "site",
                &NewDeploy {
                    commit_to: "c4".into(),
                    ..NewDeploy::default()
                },
            )
            .unwrap()
            .unwrap();
        let claimed = store.claim_next_deploy("site").unwrap().unwrap();
        assert_eq!((claimed.id, claimed.kind), (push, DeployKind::Restore));
        store
            .finish_deploy(push, DeployStatus::Ok, DeployStats::default(), None)
            .unwrap();
        assert_eq!(store.deploy(f3).unwrap().restored_by, Some(push));
    }
}
