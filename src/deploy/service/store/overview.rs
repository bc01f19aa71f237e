//! Read-only views over the deploy log for the dashboard: per-service counts in one query (the
//! log itself, a page at a time, is `deploy_log` in `history`).

use std::collections::HashMap;

use serde::Serialize;

use super::{DeployStoreError, ServiceStore};

/// How a service's deploys went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployCounts {
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    /// The newest deploy's id, for ordering services by their latest deploy.
    pub latest_id: Option<i64>,
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
}
