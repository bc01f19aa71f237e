//! The deploys: the queue (`queued` → `running` → `ok`/`failed`/`skipped`), the log read back
//! (statistics, pages, skips, the range a restore covers) and per-service counts. History is
//! never deleted: a skipped or restored deploy keeps its row, with who skipped it and why, or
//! which deploy restored it.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _, Row, Transaction, TransactionBehavior, params};

use super::super::model::{
    Deploy, DeployCounts, DeployFilter, DeployKind, DeployStats, DeployStatus, NewDeploy,
    ServiceStats, SkipRecord,
};
use super::super::webhook::PushCommit;
use super::{DeployStore, DeployStoreError, NOW, service_id};
use crate::sqlite;

/// The deploys of a [`DeployStore`], queued and past.
#[derive(Debug, Clone, Copy)]
pub struct Deploys<'a>(pub(super) &'a DeployStore);

impl std::ops::Deref for Deploys<'_> {
    type Target = DeployStore;

    fn deref(&self) -> &DeployStore {
        self.0
    }
}

impl Deploys<'_> {
    /// Queues a deploy. `None` when the service already has one for this delivery id and
    /// branch (a host retrying a delivery).
    pub fn queue(&self, service: &str, new: &NewDeploy) -> Result<Option<i64>, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let result = insert_deploy(&connection, service_id, new, DeployKind::Push);
        match result {
            Ok(id) => Ok(Some(id)),
            Err(DeployStoreError::Sqlite(e)) if sqlite::is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records the commit a running push deploy really deploys (its branch's tip, which may be
    /// newer than, or other than, what its webhook named) and the commits it brings.
    pub fn settle_commit(
        &self,
        id: i64,
        commit: &str,
        commits: &[PushCommit],
    ) -> Result<(), DeployStoreError> {
        let commits =
            serde_json::to_string(commits).map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
        let changed = self.lock().execute(
            "UPDATE deploy_deploys SET commit_to = ?1, commits = ?2 WHERE id = ?3",
            params![commit, commits, id],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        Ok(())
    }

    /// Marks a queued deploy as running, stamped with the current time.
    pub fn start(&self, id: i64) -> Result<(), DeployStoreError> {
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_deploys SET status = 'running', started_at = {NOW}
                 WHERE id = ?1 AND status = 'queued'"
            ),
            [id],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        Ok(())
    }

    /// Records how a deploy ended; a successful one becomes the service's last deployed commit.
    pub fn finish(
        &self,
        id: i64,
        status: DeployStatus,
        stats: DeployStats,
        error: Option<&str>,
    ) -> Result<(), DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let changed = tx.execute(
            &format!(
                "UPDATE deploy_deploys SET status = ?1, finished_at = {NOW}, files_added = ?2,
                     files_modified = ?3, files_removed = ?4, bytes = ?5, error = ?6
                 WHERE id = ?7"
            ),
            params![
                status.as_str(),
                to_i64(stats.files_added),
                to_i64(stats.files_modified),
                to_i64(stats.files_removed),
                to_i64(stats.bytes),
                error,
                id
            ],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchDeploy(id));
        }
        if status == DeployStatus::Ok {
            tx.execute(
                "UPDATE deploy_services SET last_deployed_commit =
                     (SELECT commit_to FROM deploy_deploys WHERE id = ?1)
                 WHERE id = (SELECT service_id FROM deploy_deploys WHERE id = ?1)",
                [id],
            )?;
            mark_restored(&tx, id)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, id: i64) -> Result<Deploy, DeployStoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("{DEPLOY_SELECT} WHERE d.id = ?1"),
                [id],
                read_deploy,
            )
            .optional()?
            .transpose()?
            .ok_or(DeployStoreError::NoSuchDeploy(id))
    }

    /// The newest `limit` deploys of a service, newest first.
    pub fn list(&self, service: &str, limit: u32) -> Result<Vec<Deploy>, DeployStoreError> {
        let connection = self.lock();
        let service_id = service_id(&connection, service)?;
        let mut statement = connection.prepare(&format!(
            "{DEPLOY_SELECT} WHERE d.service_id = ?1 ORDER BY d.id DESC LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![service_id, limit], read_deploy)?;
        rows.map(|row| row?).collect()
    }

    // ---- the queue (see `queue.rs`) ----

    /// Puts deploys a crash left `running` back in the queue; their journal makes them resume.
    /// Returns how many there were.
    pub fn requeue_interrupted(&self) -> Result<usize, DeployStoreError> {
        Ok(self.lock().execute(
            "UPDATE deploy_deploys SET status = 'queued', started_at = NULL
             WHERE status = 'running'",
            [],
        )?)
    }

    /// The services with queued deploys, by name.
    pub fn services_with_queued(&self) -> Result<Vec<String>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT DISTINCT s.name FROM deploy_deploys d
             JOIN deploy_services s ON s.id = d.service_id
             WHERE d.status = 'queued' ORDER BY s.name",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes the service's newest queued deploy and marks it running; older queued ones are
    /// coalesced into it (marked skipped, their commits carried over). `None` when nothing is
    /// queued.
    pub fn claim_next(&self, service: &str) -> Result<Option<Deploy>, DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let service_id = service_id(&tx, service)?;
        let queued: Vec<(i64, String)> = {
            let mut statement = tx.prepare(
                "SELECT id, commits FROM deploy_deploys
                 WHERE service_id = ?1 AND status = 'queued' ORDER BY id",
            )?;
            let rows = statement.query_map([service_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let Some(((newest, _), older)) = queued.split_last() else {
            return Ok(None);
        };
        if !older.is_empty() {
            let mut commits: Vec<PushCommit> = Vec::new();
            for (_, json) in queued.iter() {
                let more: Vec<PushCommit> = serde_json::from_str(json)
                    .map_err(|e| DeployStoreError::Corrupt(format!("deploy commits: {e}")))?;
                for commit in more {
                    if !commits.iter().any(|c| c.id == commit.id) {
                        commits.push(commit);
                    }
                }
            }
            let commits = serde_json::to_string(&commits)
                .map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE deploy_deploys SET commits = ?1 WHERE id = ?2",
                params![commits, newest],
            )?;
            carry_restore(&tx, *newest, older.iter().map(|(id, _)| *id))?;
            for (id, _) in older {
                tx.execute(
                    &format!(
                        "UPDATE deploy_deploys SET status = 'skipped', finished_at = {NOW},
                             error = ?1 WHERE id = ?2"
                    ),
                    params![
                        format!("superseded by the newer push of deploy {newest}"),
                        id
                    ],
                )?;
            }
        }
        tx.execute(
            &format!(
                "UPDATE deploy_deploys SET status = 'running', started_at = {NOW} WHERE id = ?1"
            ),
            [newest],
        )?;
        let deploy = tx.query_row(
            &format!("{DEPLOY_SELECT} WHERE d.id = ?1"),
            [newest],
            read_deploy,
        )??;
        tx.commit()?;
        Ok(Some(deploy))
    }

    /// The service's deploy counts, failure rate and newest finished deploy.
    pub fn stats(&self, service: &str) -> Result<ServiceStats, DeployStoreError> {
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
    pub fn log(&self, filter: &DeployFilter) -> Result<(Vec<Deploy>, u64), DeployStoreError> {
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
    pub fn skip(&self, id: i64, by: &str, reason: &str) -> Result<Deploy, DeployStoreError> {
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
    pub fn active(&self, service: &str) -> Result<Option<Deploy>, DeployStoreError> {
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
        let id = insert_deploy(&tx, service_id, new, kind)?;
        tx.commit()?;
        Ok(id)
    }

    /// Deploy counts of every service that has deploys, by service name.
    pub fn counts(&self) -> Result<HashMap<String, DeployCounts>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT s.name,
                    SUM(d.status = 'ok'), SUM(d.status = 'failed'), SUM(d.status = 'skipped'),
                    MAX(d.id)
             FROM deploy_deploys d JOIN deploy_services s ON s.id = d.service_id
             GROUP BY s.id",
        )?;
        let counts = statement
            .query_map([], |row| {
                let count =
                    |i| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
                Ok((
                    row.get::<_, String>(0)?,
                    DeployCounts {
                        ok: count(1)?,
                        failed: count(2)?,
                        skipped: count(3)?,
                        latest_id: row.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(counts)
    }
}

/// The one way a deploy row is written: queued, of `kind`, with everything `new` says.
fn insert_deploy(
    connection: &Connection,
    service_id: i64,
    new: &NewDeploy,
    kind: DeployKind,
) -> Result<i64, DeployStoreError> {
    let commits = serde_json::to_string(&new.commits)
        .map_err(|e| DeployStoreError::Corrupt(e.to_string()))?;
    connection.execute(
        &format!(
            "INSERT INTO deploy_deploys (service_id, status, kind, branch, commit_from,
                 commit_to, delivery_id, user, user_email, queued_at, commits)
             VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, ?9)"
        ),
        params![
            service_id,
            kind.as_str(),
            new.branch,
            new.commit_from,
            new.commit_to,
            new.delivery_id,
            new.user,
            new.user_email,
            commits
        ],
    )?;
    Ok(connection.last_insert_rowid())
}

const DEPLOY_SELECT: &str = "
    SELECT d.id, s.name, d.status, d.branch, d.commit_from, d.commit_to, d.delivery_id, d.user,
           d.queued_at, d.started_at, d.finished_at, d.files_added, d.files_modified,
           d.files_removed, d.bytes, d.error, d.commits, d.kind,
           CAST(round((julianday(d.finished_at) - julianday(d.started_at)) * 86400) AS INTEGER),
           d.skipped_by, d.skip_reason, d.skipped_at, d.restored_by, d.user_email
    FROM deploy_deploys d JOIN deploy_services s ON s.id = d.service_id";

fn read_deploy(row: &Row<'_>) -> rusqlite::Result<Result<Deploy, DeployStoreError>> {
    let status: String = row.get(2)?;
    let commits: String = row.get(16)?;
    let kind: String = row.get(17)?;
    let skipped_by: Option<String> = row.get(19)?;
    let skip_reason: Option<String> = row.get(20)?;
    let skipped_at: Option<String> = row.get(21)?;
    let count = |i| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let stats = DeployStats {
        files_added: count(11)?,
        files_modified: count(12)?,
        files_removed: count(13)?,
        bytes: count(14)?,
    };
    let parsed = (|| {
        Ok(Deploy {
            id: row.get(0)?,
            service: row.get(1)?,
            status: DeployStatus::parse(&status)
                .ok_or_else(|| DeployStoreError::Corrupt(format!("deploy status {status:?}")))?,
            branch: row.get(3)?,
            commit_from: row.get(4)?,
            commit_to: row.get(5)?,
            delivery_id: row.get(6)?,
            user: row.get(7)?,
            user_email: row.get(23)?,
            queued_at: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            stats,
            error: row.get(15)?,
            commits: serde_json::from_str(&commits)
                .map_err(|e| DeployStoreError::Corrupt(format!("deploy commits: {e}")))?,
            kind: DeployKind::parse(&kind)
                .ok_or_else(|| DeployStoreError::Corrupt(format!("deploy kind {kind:?}")))?,
            duration_secs: row.get(18)?,
            skipped: skipped_by.map(|by| SkipRecord {
                by,
                reason: skip_reason.unwrap_or_default(),
                at: skipped_at.unwrap_or_default(),
            }),
            restored_by: row.get(22)?,
        })
    })();
    Ok(parsed)
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
fn mark_restored(tx: &Transaction<'_>, id: i64) -> Result<(), DeployStoreError> {
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
fn carry_restore(
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
mod tests;
