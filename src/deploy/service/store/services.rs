//! The services: what each deploys where, its sealed secrets, and its last validation.

use std::path::PathBuf;

use rusqlite::{OptionalExtension as _, Row, Transaction, TransactionBehavior, params};

use super::super::model::{
    DeploySettings, NewService, Service, ServiceSecrets, ServiceUpdate, TlsVerify, Validation,
    ValidationCheck,
};
use super::secret_places::{SecretPlaces, SentSecret, moved_secrets};
use super::{
    DeployStore, DeployStoreError, FTP_PASSWORD, NOW, PROVIDER_TOKEN, WEBHOOK_SECRET,
    generate_hook_key, notification_set_id, tls_verify_column, validate_name,
};
use crate::sqlite;

/// The services of a [`DeployStore`].
#[derive(Debug, Clone, Copy)]
pub struct Services<'a>(pub(super) &'a DeployStore);

impl std::ops::Deref for Services<'_> {
    type Target = DeployStore;

    fn deref(&self) -> &DeployStore {
        self.0
    }
}

impl Services<'_> {
    pub fn add(&self, new: &NewService) -> Result<Service, DeployStoreError> {
        validate_name(&new.name)?;
        new.deploy
            .check()
            .map_err(DeployStoreError::InvalidDeploySettings)?;
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let set_id = match &new.notification_set {
            Some(set) => Some(notification_set_id(&tx, set)?),
            None => None,
        };
        let (tls_verify, tls_ca_file) = tls_verify_column(&new.tls_verify);
        let result = tx.execute(
            &format!(
                "INSERT INTO deploy_services (name, repo_url, provider, branch, target_url,
                     tls_verify, tls_ca_file, ftp_password, provider_token, webhook_secret,
                     hook_key, notification_set_id, api_url, deploy_mode, fallback_ordered,
                     entry_points, maintenance, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, {NOW}, {NOW})"
            ),
            params![
                new.name,
                new.repo_url,
                new.provider.as_str(),
                new.branch.as_str(),
                new.target.to_string(),
                tls_verify,
                tls_ca_file,
                self.seal(new.secrets.ftp_password.as_ref(), FTP_PASSWORD),
                self.seal(new.secrets.provider_token.as_ref(), PROVIDER_TOKEN),
                self.seal(new.secrets.webhook_secret.as_ref(), WEBHOOK_SECRET),
                generate_hook_key(),
                set_id,
                new.api_url,
                new.deploy.mode.as_str(),
                new.deploy.fallback_ordered,
                entry_points_column(&new.deploy.entry_points),
                new.deploy.maintenance.as_ref().map(ToString::to_string),
            ],
        );
        match result {
            Ok(_) => {}
            Err(e) if sqlite::is_unique_violation(&e) => {
                return Err(DeployStoreError::ServiceExists(new.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit()?;
        drop(connection);
        self.get(&new.name)
    }

    pub fn update(&self, name: &str, update: &ServiceUpdate) -> Result<Service, DeployStoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: i64 = tx
            .query_row(
                "SELECT id FROM deploy_services WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))?;
        check_secret_places(&tx, id, update)?;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!("UPDATE deploy_services SET {column} = ?1 WHERE id = ?2"),
                params![value, id],
            )
        };
        if let Some(repo) = &update.repo_url {
            set("repo_url", repo)?;
        }
        if let Some(provider) = update.provider {
            set("provider", &provider.as_str())?;
        }
        if let Some(branch) = &update.branch {
            set("branch", &branch.as_str())?;
        }
        if let Some(target) = &update.target {
            set("target_url", &target.to_string())?;
        }
        if let Some(tls) = &update.tls_verify {
            let (verify, ca_file) = tls_verify_column(tls);
            set("tls_verify", &verify)?;
            set("tls_ca_file", &ca_file)?;
        }
        if let Some(notification_set) = &update.notification_set {
            let set_id = match notification_set {
                Some(set) => Some(notification_set_id(&tx, set)?),
                None => None,
            };
            set("notification_set_id", &set_id)?;
        }
        if let Some(enabled) = update.enabled {
            set("enabled", &enabled)?;
        }
        for (column, value) in [
            (FTP_PASSWORD, &update.ftp_password),
            (PROVIDER_TOKEN, &update.provider_token),
            (WEBHOOK_SECRET, &update.webhook_secret),
        ] {
            if let Some(secret) = value {
                set(column, &self.seal(secret.as_ref(), column))?;
            }
        }
        if let Some(api_url) = &update.api_url {
            set("api_url", api_url)?;
        }
        if update.new_hook_key {
            set("hook_key", &generate_hook_key())?;
        }
        if let Some(mode) = update.deploy_mode {
            set("deploy_mode", &mode.as_str())?;
        }
        if let Some(fallback) = update.fallback_ordered {
            set("fallback_ordered", &fallback)?;
        }
        if let Some(patterns) = &update.entry_points {
            set("entry_points", &entry_points_column(patterns))?;
        }
        if let Some(page) = &update.maintenance {
            set("maintenance", &page.as_ref().map(ToString::to_string))?;
        }
        // The settings as they now stand must make sense together (the transaction is rolled
        // back otherwise).
        let settings = tx.query_row(
            "SELECT deploy_mode, fallback_ordered, entry_points, maintenance
             FROM deploy_services WHERE id = ?1",
            [id],
            read_deploy_settings(0),
        )??;
        settings
            .check()
            .map_err(DeployStoreError::InvalidDeploySettings)?;
        tx.execute(
            &format!("UPDATE deploy_services SET updated_at = {NOW} WHERE id = ?1"),
            [id],
        )?;
        tx.commit()?;
        drop(connection);
        self.get(name)
    }

    pub fn delete(&self, name: &str) -> Result<(), DeployStoreError> {
        let deleted = self
            .lock()
            .execute("DELETE FROM deploy_services WHERE name = ?1", [name])?;
        if deleted == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<Service, DeployStoreError> {
        self.find_service("s.name = ?1", name)?
            .ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))
    }

    /// The service a webhook URL key belongs to.
    pub fn by_hook_key(&self, key: &str) -> Result<Option<Service>, DeployStoreError> {
        self.find_service("s.hook_key = ?1", key)
    }

    pub fn list(&self) -> Result<Vec<Service>, DeployStoreError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare(&format!("{SERVICE_SELECT} ORDER BY s.name COLLATE NOCASE"))?;
        let rows = statement.query_map([], read_service)?;
        rows.map(|row| row?).collect()
    }

    fn find_service(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Option<Service>, DeployStoreError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("{SERVICE_SELECT} WHERE {condition}"),
                [value],
                read_service,
            )
            .optional()?
            .transpose()
    }

    /// The service's secrets, decrypted.
    pub fn secrets(&self, name: &str) -> Result<ServiceSecrets, DeployStoreError> {
        type Sealed = Option<Vec<u8>>;
        let sealed: Option<(Sealed, Sealed, Sealed)> = self
            .lock()
            .query_row(
                "SELECT ftp_password, provider_token, webhook_secret
                 FROM deploy_services WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let (ftp, token, webhook) =
            sealed.ok_or_else(|| DeployStoreError::NoSuchService(name.to_owned()))?;
        Ok(ServiceSecrets {
            ftp_password: self.unseal(ftp, FTP_PASSWORD)?,
            provider_token: self.unseal(token, PROVIDER_TOKEN)?,
            webhook_secret: self.unseal(webhook, WEBHOOK_SECRET)?,
        })
    }

    /// Stores the outcome of a validation run, stamped with the current time.
    pub fn record_validation(
        &self,
        name: &str,
        ok: bool,
        message: &str,
    ) -> Result<(), DeployStoreError> {
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_services
                 SET validation_ok = ?1, validation_message = ?2, validation_checks = '[]',
                     validated_at = {NOW}
                 WHERE name = ?3"
            ),
            params![ok, message, name],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        Ok(())
    }

    /// Stores a validation run's checks, stamped with the current time: the service's
    /// validation is ok when every check is, and its message names the failed ones.
    pub fn record_validation_checks(
        &self,
        name: &str,
        checks: &[ValidationCheck],
    ) -> Result<Validation, DeployStoreError> {
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        let message = if failed.is_empty() {
            "all checks passed".to_owned()
        } else {
            failed.join("; ")
        };
        let json = serde_json::to_string(checks)
            .map_err(|e| DeployStoreError::Corrupt(format!("validation checks: {e}")))?;
        let changed = self.lock().execute(
            &format!(
                "UPDATE deploy_services
                 SET validation_ok = ?1, validation_message = ?2, validation_checks = ?3,
                     validated_at = {NOW}
                 WHERE name = ?4"
            ),
            params![failed.is_empty(), message, json, name],
        )?;
        if changed == 0 {
            return Err(DeployStoreError::NoSuchService(name.to_owned()));
        }
        self.get(name)?
            .last_validation
            .ok_or_else(|| DeployStoreError::Corrupt("the validation was not stored".into()))
    }
}

const SERVICE_SELECT: &str = "
    SELECT s.id, s.name, s.repo_url, s.provider, s.branch, s.target_url, s.tls_verify,
           s.tls_ca_file, s.hook_key, n.name, s.enabled, s.ftp_password IS NOT NULL,
           s.provider_token IS NOT NULL, s.webhook_secret IS NOT NULL, s.last_deployed_commit,
           s.validation_ok, s.validation_message, s.validated_at, s.created_at, s.updated_at,
           s.api_url, s.validation_checks, s.deploy_mode, s.fallback_ordered, s.entry_points,
           s.maintenance
    FROM deploy_services s
    LEFT JOIN deploy_notification_sets n ON n.id = s.notification_set_id";

/// A service row; the outer `Result` is SQLite's, the inner one says whether the values parse.
fn read_service(row: &Row<'_>) -> rusqlite::Result<Result<Service, DeployStoreError>> {
    let provider: String = row.get(3)?;
    let branch: String = row.get(4)?;
    let target: String = row.get(5)?;
    let tls_verify: String = row.get(6)?;
    let tls_ca_file: Option<String> = row.get(7)?;
    let validation_ok: Option<bool> = row.get(15)?;
    let validation = match validation_ok {
        Some(ok) => Some(Validation {
            ok,
            message: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
            at: row.get::<_, Option<String>>(17)?.unwrap_or_default(),
            checks: serde_json::from_str(&row.get::<_, String>(21)?).unwrap_or_default(),
        }),
        None => None,
    };
    let deploy = read_deploy_settings(22)(row)?;
    let service = (|| {
        let corrupt = DeployStoreError::Corrupt;
        Ok(Service {
            deploy: deploy?,
            id: row.get(0)?,
            name: row.get(1)?,
            repo_url: row.get(2)?,
            provider: provider.parse().map_err(corrupt)?,
            branch: branch.parse().map_err(corrupt)?,
            target: target.parse().map_err(corrupt)?,
            tls_verify: match (tls_verify.as_str(), tls_ca_file) {
                ("system", _) => TlsVerify::SystemRoots,
                ("insecure", _) => TlsVerify::Insecure,
                ("ca-file", Some(path)) => TlsVerify::CaFile(PathBuf::from(path)),
                (other, _) => return Err(corrupt(format!("tls_verify {other:?}"))),
            },
            hook_key: row.get(8)?,
            notification_set: row.get(9)?,
            enabled: row.get(10)?,
            has_ftp_password: row.get(11)?,
            has_provider_token: row.get(12)?,
            has_webhook_secret: row.get(13)?,
            last_deployed_commit: row.get(14)?,
            last_validation: validation,
            api_url: row.get(20)?,
            created_at: row.get(18)?,
            updated_at: row.get(19)?,
        })
    })();
    Ok(service)
}

/// The entry-point patterns as stored: a JSON array.
fn entry_points_column(patterns: &[String]) -> String {
    serde_json::Value::from(patterns).to_string()
}

/// Reads the four deploy-settings columns from `first` on.
fn read_deploy_settings(
    first: usize,
) -> impl Fn(&Row<'_>) -> rusqlite::Result<Result<DeploySettings, DeployStoreError>> {
    move |row| {
        let mode: String = row.get(first)?;
        let fallback_ordered: bool = row.get(first + 1)?;
        let entry_points: String = row.get(first + 2)?;
        let maintenance: Option<String> = row.get(first + 3)?;
        let corrupt = DeployStoreError::Corrupt;
        Ok((|| {
            Ok(DeploySettings {
                mode: mode.parse().map_err(corrupt)?,
                fallback_ordered,
                entry_points: serde_json::from_str(&entry_points)
                    .map_err(|e| corrupt(format!("entry points: {e}")))?,
                maintenance: maintenance
                    .map(|page| page.parse())
                    .transpose()
                    .map_err(corrupt)?,
            })
        })())
    }
}

fn check_secret_places(
    tx: &Transaction<'_>,
    id: i64,
    update: &ServiceUpdate,
) -> Result<(), DeployStoreError> {
    let (target, repo_url, provider, api_url, has_password, has_token): (
        String,
        String,
        String,
        Option<String>,
        bool,
        bool,
    ) = tx.query_row(
        "SELECT target_url, repo_url, provider, api_url, ftp_password IS NOT NULL,
                provider_token IS NOT NULL
         FROM deploy_services WHERE id = ?1",
        [id],
        |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        },
    )?;
    let before = SecretPlaces {
        target: target.parse().map_err(DeployStoreError::Corrupt)?,
        repo_url,
        provider: provider.parse().map_err(DeployStoreError::Corrupt)?,
        api_url,
    };
    let after = SecretPlaces {
        target: update
            .target
            .clone()
            .unwrap_or_else(|| before.target.clone()),
        repo_url: update
            .repo_url
            .clone()
            .unwrap_or_else(|| before.repo_url.clone()),
        provider: update.provider.unwrap_or(before.provider),
        api_url: update
            .api_url
            .clone()
            .unwrap_or_else(|| before.api_url.clone()),
    };
    for moved in moved_secrets(&before, &after) {
        let (stored, given) = match moved.secret {
            SentSecret::FtpPassword => (has_password, update.ftp_password.is_some()),
            SentSecret::ProviderToken => (has_token, update.provider_token.is_some()),
        };
        if stored && !given {
            return Err(DeployStoreError::SecretMustBeGivenAgain(moved));
        }
    }
    Ok(())
}
