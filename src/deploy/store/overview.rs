//! Read-only views over the deploy log for the dashboard: per-service counts in one query, and
//! the whole log a page at a time, filtered by service and by failures.

use std::collections::HashMap;

use rusqlite::params;
use serde::Serialize;

use super::{DEPLOY_SELECT, Deploy, DeployStoreError, ServiceStore, read_deploy};

/// How a service's deploys went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployCounts {
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    /// The newest deploy's id, for ordering services by their latest deploy.
    pub latest_id: Option<i64>,
}

/// A filter over the whole deploy log.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub service: Option<String>,
    pub failed_only: bool,
}

impl ServiceStore {
    /// Deploy counts of every service that has deploys, by service name.
    pub fn deploy_counts(&self) -> Result<HashMap<String, DeployCounts>, DeployStoreError> {
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

    /// One page of the deploy log, newest first, and how many deploys the filter matches.
    pub fn deploy_log(
        &self,
        filter: &LogFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Deploy>, u64), DeployStoreError> {
        let connection = self.lock();
        let condition = "(?1 IS NULL OR s.name = ?1) AND (?2 = 0 OR d.status = 'failed')";
        let total: i64 = connection.query_row(
            &format!(
                "SELECT COUNT(*) FROM deploy_deploys d
                 JOIN deploy_services s ON s.id = d.service_id WHERE {condition}"
            ),
            params![filter.service, filter.failed_only],
            |row| row.get(0),
        )?;
        let mut statement = connection.prepare(&format!(
            "{DEPLOY_SELECT} WHERE {condition} ORDER BY d.id DESC LIMIT ?3 OFFSET ?4"
        ))?;
        let deploys = statement
            .query_map(
                params![
                    filter.service,
                    filter.failed_only,
                    limit,
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                read_deploy,
            )?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok((deploys, total.max(0) as u64))
    }
}
